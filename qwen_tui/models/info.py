"""`qwen-tui models info PATH|NAME`: what a GGUF is, from its header alone (no weights loaded)."""

from __future__ import annotations

from pathlib import Path

from qwen_tui.engine.gguf_header import read_header
from qwen_tui.engine.resources import memory_shape
from qwen_tui.models.catalog import quant_of_filename


def model_facts(path: str | Path, mmproj: str | Path | None = None) -> dict:
    """Architecture, parameters, size, quant, trained context, vision: a dict for text or JSON."""
    path = Path(path).expanduser()
    header = read_header(path)  # ModelFileError: one line
    arch = header.architecture
    facts: dict = {
        "path": str(path),
        "name": header.name,
        "architecture": arch,
        "parameters": header.n_params,
        "file_size": header.file_size,
        "quant": _quant(header, path),
        "context_length": int(header.arch_key("context_length", 0) or 0),
    }
    if arch == "clip":  # this file *is* a vision projector
        facts["vision"] = bool(header.metadata.get("clip.has_vision_encoder"))
        facts["projector"] = header.metadata.get("clip.projector_type") or header.metadata.get("clip.vision.projector_type")
        facts["mmproj"] = None
        return facts
    if mmproj is None:
        from qwen_tui.models.store import _mmproj_next_to

        mmproj = _mmproj_next_to(path)
    facts["mmproj"] = str(mmproj) if mmproj and Path(mmproj).is_file() else None
    facts["vision"] = False
    if facts["mmproj"]:
        problem = mmproj_problem(facts["mmproj"])
        facts["vision"] = problem is None
        if problem:
            facts["mmproj_problem"] = problem
    shape = memory_shape(header)
    facts.update(
        layers=shape.n_layers,
        attention_layers=shape.n_attention_layers,
        deltanet_layers=shape.n_recurrent_layers,
        kv_bytes_per_token=shape.kv_bytes_per_token,
        deltanet_state_bytes=shape.recurrent_state_bytes,
        vocab_size=header.vocab_size,
        chat_template=header.chat_template is not None,
    )
    return facts


def mmproj_problem(path: str | Path) -> str | None:
    """None when `path` is a vision projector llama.cpp's mtmd can open (by its header), else why not."""
    from qwen_tui.engine.errors import ModelFileError

    try:
        header = read_header(path)
    except ModelFileError as exc:
        return str(exc)
    if header.architecture != "clip":
        return f"{Path(path).name} is a {header.architecture} model, not a vision projector (clip)"
    if not header.metadata.get("clip.has_vision_encoder"):
        return f"{Path(path).name} has no vision encoder"
    return None


def _quant(header, path: Path) -> str:
    """The file name's quant when it agrees with the tensors (it says Q4_K_M, the tensors only Q4_K)."""
    named = quant_of_filename(path.name)
    dominant = header.file_type_name
    if named and named.removeprefix("UD-").startswith(dominant):
        return named
    return dominant


def format_facts(facts: dict) -> str:
    def size(n: int) -> str:
        return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"

    def params(n: int) -> str:
        return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"

    lines = [
        f"name           {facts['name']}",
        f"path           {facts['path']}",
        f"architecture   {facts['architecture']}",
        f"parameters     {params(facts['parameters'])} ({facts['parameters']:,})",
        f"file size      {size(facts['file_size'])} ({facts['file_size']:,} bytes)",
        f"quant          {facts['quant']}",
        f"context        {facts['context_length']:,} tokens (trained)" if facts["context_length"] else "context        unknown",
    ]
    if "layers" in facts:
        lines.append(f"layers         {facts['layers']} ({facts['attention_layers']} full attention, "
                     f"{facts['deltanet_layers']} Gated DeltaNet)")
        lines.append(f"memory         KV cache {facts['kv_bytes_per_token'] / 1024:.1f} KiB per token; "
                     f"DeltaNet state {facts['deltanet_state_bytes'] / 1024**2:.1f} MiB")
    vision = "yes" if facts["vision"] else "no"
    if facts.get("mmproj_problem"):
        vision += f" ({facts['mmproj_problem']})"
    elif facts.get("mmproj"):
        vision += f" (projector {facts['mmproj']})"
    elif facts["architecture"] != "clip":
        vision += " (no mmproj file next to it)"
    lines.append(f"vision         {vision}")
    return "\n".join(lines)
