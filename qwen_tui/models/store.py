"""The local model registry: what `qwen-tui models list` shows and what a model name resolves to.

Pulled models live in the models folder (the platformdirs user data dir's `models/`, or
`[models] dir` in config.toml), one sub-folder per Hub repository. GGUFs elsewhere can be
added by path: they are registered, never copied or moved. The registry is a small JSON file
(`models.json` in the data dir) written atomically; GGUFs lying in the models folder without an
entry (e.g. the demo model) are listed too.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwen_tui import paths
from qwen_tui.models.catalog import is_mmproj

INCOMPLETE = ".incomplete"  # partial downloads, inside the models folder (same filesystem: atomic rename)


class ModelNotFound(LookupError):
    pass


@dataclass
class LocalModel:
    name: str
    path: str
    source: str = "folder"  # "pull", "added" (by path) or "folder" (found in the models folder)
    repo: str | None = None
    filename: str | None = None
    quant: str | None = None
    size: int | None = None
    sha256: str | None = None
    mmproj: str | None = None
    added: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def exists(self) -> bool:
        return Path(self.path).is_file()

    @property
    def vision(self) -> bool:
        """A vision projector (mmproj) that is really one, by its header."""
        if not self.mmproj or not Path(self.mmproj).is_file():
            return False
        from qwen_tui.models.info import mmproj_problem

        return mmproj_problem(self.mmproj) is None

    def to_json(self) -> dict:
        data = asdict(self)
        data["exists"] = self.exists
        data["vision"] = self.vision
        if self.exists and data["size"] is None:
            data["size"] = Path(self.path).stat().st_size
        return data


def _config() -> tuple[dict, list[str]]:
    from qwen_tui.config import load_table

    return load_table("models")


def models_dir() -> Path:
    """`[models] dir` from config.toml, else `<user data dir>/models`."""
    table, _ = _config()
    configured = table.get("dir")
    folder = Path(os.path.expandvars(str(configured))).expanduser() if isinstance(configured, str) and configured else paths.data_dir() / "models"
    return folder


def default_model() -> str | None:
    """`[models] default`: a registry name or a path, used when neither --model nor --demo is given."""
    table, _ = _config()
    value = table.get("default")
    return value if isinstance(value, str) and value.strip() else None


class ModelStore:
    def __init__(self, folder: Path | None = None, registry: Path | None = None) -> None:
        self.folder = folder or models_dir()
        self.registry = registry or paths.data_dir() / "models.json"

    # -- registry file -------------------------------------------------------------------
    def _read(self) -> list[LocalModel]:
        try:
            data = json.loads(self.registry.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return []  # a broken registry is rebuilt from what is on disk
        known = LocalModel.__dataclass_fields__
        return [LocalModel(**{k: v for k, v in item.items() if k in known})
                for item in data.get("models", []) if isinstance(item, dict) and "name" in item and "path" in item]

    def _write(self, models: list[LocalModel]) -> None:
        self.registry.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.registry.with_name(self.registry.name + ".tmp")
        tmp.write_text(json.dumps({"models": [asdict(m) for m in models]}, indent=2), encoding="utf-8")
        os.replace(tmp, self.registry)

    # -- queries ---------------------------------------------------------------------------
    def list(self) -> list[LocalModel]:
        models = self._read()
        seen = {os.path.realpath(m.path) for m in models} | {os.path.realpath(m.mmproj) for m in models if m.mmproj}
        if self.folder.is_dir():
            for path in sorted(self.folder.rglob("*.gguf")):
                if INCOMPLETE in path.parts or is_mmproj(path.name) or os.path.realpath(path) in seen:
                    continue
                mmproj = _mmproj_next_to(path)
                models.append(LocalModel(path.stem, str(path), "folder", mmproj=str(mmproj) if mmproj else None,
                                         added=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))))
        return models

    def get(self, name: str) -> LocalModel:
        models = self.list()
        for m in models:
            if m.name == name:
                return m
        lowered = name.lower()
        matches = [m for m in models if m.name.lower() == lowered or Path(m.path).name.lower() == lowered]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(m.name for m in models) or "none yet (qwen-tui models pull qwen3.5:4b)"
        raise ModelNotFound(f"no local model named {name!r}; local models: {known}")

    def resolve(self, name_or_path: str) -> Path:
        """A path as is when it exists, else a registry name."""
        candidate = Path(name_or_path).expanduser()
        if candidate.exists():
            return candidate
        return Path(self.get(name_or_path).path)

    # -- changes ---------------------------------------------------------------------------
    def register(self, model: LocalModel) -> LocalModel:
        models = [m for m in self._read() if m.name != model.name and os.path.realpath(m.path) != os.path.realpath(model.path)]
        models.append(model)
        self._write(models)
        return model

    def add_path(self, path: str | Path, name: str | None = None) -> LocalModel:
        """Register a GGUF that lives elsewhere (validated from its header; never copied)."""
        from qwen_tui.engine.gguf_header import read_header

        path = Path(path).expanduser().resolve()
        header = read_header(path)  # raises ModelFileError with a one-line reason
        mmproj = _mmproj_next_to(path)
        model = LocalModel(name or path.stem, str(path), "added", quant=header.file_type_name,
                           size=header.file_size, mmproj=str(mmproj) if mmproj else None)
        return self.register(model)

    def remove(self, name: str, *, delete_files: bool | None = None) -> tuple[LocalModel, list[str]]:
        """Forget a model. Files we downloaded are deleted; files added by path stay unless asked."""
        model = self.get(name)
        delete = model.source != "added" if delete_files is None else delete_files
        deleted: list[str] = []
        remaining = [m for m in self._read() if m.name != model.name]
        if delete:
            still_used = {os.path.realpath(m.mmproj) for m in remaining if m.mmproj}
            for file in [model.path, model.mmproj]:
                if not file or not Path(file).exists():
                    continue
                if file == model.mmproj and os.path.realpath(file) in still_used:
                    continue
                Path(file).unlink()
                deleted.append(file)
            folder = Path(model.path).parent
            if folder != self.folder and self.folder in folder.parents:
                _remove_empty_dirs(folder, self.folder)
        self._write(remaining)
        return model, deleted


def _mmproj_next_to(path: Path) -> Path | None:
    """A vision projector in the same folder (Unsloth and llama.cpp name them mmproj-*.gguf)."""
    try:
        candidates = sorted(p for p in path.parent.glob("*.gguf") if is_mmproj(p.name))
    except OSError:
        return None
    if not candidates:
        return None
    preferred = [p for p in candidates if "f16" in p.name.lower() and "bf16" not in p.name.lower()]
    return (preferred or candidates)[0]


def _remove_empty_dirs(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
