"""`qwen-tui models pull`: fetch a GGUF (and its vision projector) from the Hugging Face Hub.

huggingface_hub does the talking: `HfApi.model_info(files_metadata=True)` lists the repository's
files with their LFS size and sha256, `get_hf_file_metadata` resolves a file (HEAD, honouring
`HF_ENDPOINT`, `HF_TOKEN`, proxies), and `http_get` streams it with a progress bar, retrying a
dropped connection with a Range request. `hf_hub_download` itself is not used for the weights:
since 2.x it downloads into a process-unique temporary name and deletes it on failure, so a
killed `pull` would start again from zero. Here the partial file keeps a stable name
(`<models dir>/.incomplete/<sha256>.part`), so the next `pull` of the same file resumes it.

Nothing half-written is ever where a model is expected: the file is checked (size and sha256
against the Hub's metadata) and only then renamed into place, atomically (same filesystem).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwen_tui.models.catalog import DEFAULT_QUANT, PullSpec, is_mmproj, parse_spec, quant_of_filename
from qwen_tui.models.store import INCOMPLETE, LocalModel, ModelStore

GB = 1000**3
PREFERRED_MMPROJ = ("mmproj-F16.gguf", "mmproj-BF16.gguf", "mmproj-F32.gguf")


class PullError(Exception):
    """A pull that cannot go on; the message is one line fit for the user."""


class ChecksumError(PullError):
    pass


class DiskFullError(PullError):
    pass


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class PullPlan:
    spec: PullSpec
    model: RemoteFile
    mmproj: RemoteFile | None
    revision: str


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def plan(spec_text: str, *, revision: str = "main", token: str | bool | None = None) -> PullPlan:
    """Which files a spec means, with the sizes and checksums the Hub publishes for them."""
    spec = parse_spec(spec_text)
    from huggingface_hub import HfApi

    with _hub_errors(spec.repo):
        info = HfApi(endpoint=endpoint(), token=token).model_info(spec.repo, revision=revision, files_metadata=True)
    files = {s.rfilename: s for s in (info.siblings or [])}
    ggufs = [name for name in files if name.lower().endswith(".gguf")]
    if not ggufs:
        raise PullError(f"{spec.repo} has no GGUF files (qwen-tui runs llama.cpp GGUF models)")
    model_name = _choose_model_file(spec, [g for g in ggufs if not is_mmproj(g)])
    mmproj_name = _choose_mmproj(spec, [g for g in ggufs if is_mmproj(g)])

    def remote(name: str) -> RemoteFile:
        sibling = files[name]
        lfs = sibling.lfs
        return RemoteFile(spec.repo, name, lfs.size if lfs else sibling.size, lfs.sha256 if lfs else None)

    return PullPlan(spec, remote(model_name), remote(mmproj_name) if mmproj_name else None, info.sha or revision)


def _choose_model_file(spec: PullSpec, candidates: list[str]) -> str:
    if spec.filename:
        if spec.filename not in candidates:
            raise PullError(f"{spec.repo} has no file {spec.filename!r}")
        return spec.filename
    if spec.preset and not spec.quant:
        wanted = spec.preset.filename(DEFAULT_QUANT)
        if wanted in candidates:
            return wanted
    quant = spec.quant or DEFAULT_QUANT
    exact = [c for c in candidates if (quant_of_filename(c) or "") == quant.upper() and "-of-" not in c]
    if exact:
        return sorted(exact, key=len)[0]
    split = [c for c in candidates if (quant_of_filename(c.split("-0000")[0] + ".gguf") or "") == quant.upper()]
    if split:
        raise PullError(f"{spec.repo}:{quant} is split into several files; qwen-tui pulls single-file GGUFs only")
    if not spec.quant and len(candidates) == 1:
        return candidates[0]
    quants = sorted({q for c in candidates if (q := quant_of_filename(c))})
    raise PullError(
        f"{spec.repo} has no {quant} GGUF; it has: {', '.join(quants) or ', '.join(candidates)} "
        f"(pull {spec.repo}:QUANT)"
    )


def _choose_mmproj(spec: PullSpec, candidates: list[str]) -> str | None:
    if not candidates:
        return None
    order = ([spec.preset.mmproj] if spec.preset else []) + list(PREFERRED_MMPROJ)
    for name in order:
        if name in candidates:
            return name
    return sorted(candidates)[0]


def pull(
    spec_text: str,
    *,
    store: ModelStore | None = None,
    vision: bool = True,
    revision: str = "main",
    token: str | bool | None = None,
    progress: type | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> LocalModel:
    """Download the model (and its mmproj), verify, move into place, register. Returns the entry."""
    store = store or ModelStore()
    the_plan = plan(spec_text, revision=revision, token=token)
    folder = store.folder / the_plan.spec.repo.replace("/", os.sep)
    files = [the_plan.model] + ([the_plan.mmproj] if vision and the_plan.mmproj else [])
    paths: list[Path] = []
    for remote in files:
        dest = folder / remote.filename
        if dest.exists() and remote.size is not None and dest.stat().st_size == remote.size and (
            remote.sha256 is None or _sha256(dest) == remote.sha256
        ):
            say(f"{remote.filename}: already here ({dest})")
        else:
            download(remote, dest, store.folder / INCOMPLETE, revision=the_plan.revision, token=token,
                     progress=progress, say=say)
        paths.append(dest)
    model = LocalModel(
        the_plan.spec.name, str(paths[0]), "pull", repo=the_plan.spec.repo, filename=the_plan.model.filename,
        quant=quant_of_filename(the_plan.model.filename), size=paths[0].stat().st_size, sha256=the_plan.model.sha256,
        mmproj=str(paths[1]) if len(paths) > 1 else None,
    )
    return store.register(model)


def download(
    remote: RemoteFile,
    dest: Path,
    incomplete_dir: Path,
    *,
    revision: str = "main",
    token: str | bool | None = None,
    progress: type | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """One file: resume `<sha>.part` if there is one, verify, then rename it to `dest`."""
    from filelock import FileLock, Timeout
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(remote.repo, remote.filename, revision=revision, endpoint=endpoint())
    with _hub_errors(remote.repo, remote.filename):
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint())
    size = remote.size if remote.size is not None else meta.size
    sha256 = remote.sha256 or (meta.etag if meta.etag and len(meta.etag) == 64 else None)
    if remote.size is not None and meta.size is not None and meta.size != remote.size:
        raise PullError(f"the Hub disagrees with itself about {remote.filename}'s size ({meta.size:,} vs {remote.size:,} bytes); try again later")
    with _disk_errors(incomplete_dir):
        incomplete_dir.mkdir(parents=True, exist_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
    key = sha256 or hashlib.sha256(f"{remote.repo}/{remote.filename}@{meta.etag}".encode()).hexdigest()
    part = incomplete_dir / f"{key}.part"
    try:
        lock = FileLock(str(part) + ".lock", timeout=0)
        lock.acquire()
    except Timeout:
        raise PullError(f"another qwen-tui is already downloading {remote.filename}; wait for it to finish") from None
    except OSError as exc:
        raise _disk_error(exc, incomplete_dir) from None
    try:
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is not None:
            _check_space(size - have, incomplete_dir)
        if have:
            say(f"{remote.filename}: resuming at {have / GB:.2f} of {(size or 0) / GB:.2f} GB")
        with _hub_errors(remote.repo, remote.filename), _disk_errors(incomplete_dir):
            with part.open("ab") as f:
                http_get(meta.location, f, resume_size=have, headers=build_hf_headers(token=token),
                         expected_size=size, displayed_filename=remote.filename, tqdm_class=progress)
        got = part.stat().st_size
        if size is not None and got != size:
            part.unlink(missing_ok=True)
            raise PullError(f"{remote.filename}: got {got:,} bytes, the Hub says {size:,}; deleted, run pull again")
        if sha256:
            actual = _sha256(part)
            if actual != sha256:
                part.unlink(missing_ok=True)
                raise ChecksumError(
                    f"{remote.filename} is corrupt: its sha256 is {actual[:16]}..., the Hub says {sha256[:16]}...; "
                    "the download was deleted, run pull again"
                )
        else:
            say(f"{remote.filename}: the Hub published no sha256; checked the size only")
        with _disk_errors(dest.parent):
            os.replace(part, dest)
    finally:
        lock.release()
        Path(str(part) + ".lock").unlink(missing_ok=True)
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_space(needed: int, folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskFullError(
            f"not enough disk space in {folder}: the download needs {needed / GB:.2f} GB, {free / GB:.2f} GB is free "
            "(free some space or set [models] dir in config.toml to another disk)"
        )


def _disk_error(exc: OSError, folder: Path) -> PullError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"the disk is full ({folder}): the partial download was kept; free some space and run the same "
            "pull again to resume"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PullError(
            f"cannot write to {exc.filename or folder}: {os.strerror(exc.errno).lower()} "
            "(fix its permissions or set [models] dir in config.toml to a folder you own)"
        )
    return PullError(f"cannot write the model file: {exc}")


class _disk_errors:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, OSError) and exc.errno is not None and not _is_http_error(exc):
            raise _disk_error(exc, self.folder) from None
        return False


def _is_http_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(exc, HfHubHTTPError)


class _hub_errors:
    """huggingface_hub's exceptions -> one line that says what to do."""

    def __init__(self, repo: str, filename: str | None = None) -> None:
        self.repo, self.filename = repo, filename

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, PullError):
            return False
        import httpx2
        from huggingface_hub import errors

        what = f"{self.repo}/{self.filename}" if self.filename else self.repo
        if isinstance(exc, errors.GatedRepoError):
            raise PullError(f"{self.repo} is gated: accept its terms on the Hub and set HF_TOKEN") from None
        if isinstance(exc, errors.RepositoryNotFoundError):
            raise PullError(f"no repository {self.repo} on {endpoint()} (or it is private: set HF_TOKEN)") from None
        if isinstance(exc, errors.RevisionNotFoundError):
            raise PullError(f"{self.repo} has no such revision") from None
        if isinstance(exc, errors.EntryNotFoundError):
            raise PullError(f"{what} is not on the Hub") from None
        if isinstance(exc, (httpx2.ConnectError, httpx2.TimeoutException, errors.OfflineModeIsEnabled)):
            raise PullError(
                f"cannot reach {endpoint()} ({type(exc).__name__}): offline? `qwen-tui --demo` needs no Hub, "
                "or use --model PATH with a GGUF you have"
            ) from None
        if isinstance(exc, (httpx2.TransportError,)):
            raise PullError(f"the download of {what} failed: {exc} (run the same pull again to resume)") from None
        if isinstance(exc, errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            raise PullError(f"the Hub answered HTTP {status} for {what}: {str(exc).splitlines()[0]}") from None
        if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
            raise PullError(f"{what}: the transfer ended early (run the same pull again to resume)") from None
        return False
