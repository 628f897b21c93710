"""The app side of image input (no llama.cpp here): which projector goes with a model, how many
tokens an image may cost, and how images ride along with chat messages.

A user message carries images as `{"role": "user", "content": "text", "images": [path, ...]}`
(the session store and the transcript keep the paths). For the chat template they become
Qwen's content parts (`[{"type": "image"}, ..., {"type": "text", "text": ...}]`), which the
template renders as `<|vision_start|><|image_pad|><|vision_end|>`; the worker
(`engine/vision.py`) swaps each of those for the image's tokens, in order.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
DEFAULT_MAX_TOKENS_CPU = 1024  # a 1920x1080 screenshot would be ~2,040 tokens; downscaled to fit
DEFAULT_MAX_TOKENS_GPU = 2048


def find_mmproj(model_path: str | Path) -> str | None:
    """The vision projector for a model: registered with it, or an mmproj-*.gguf next to it."""
    model_path = Path(model_path).expanduser()
    try:
        from qwen_tui.models.store import ModelStore, _mmproj_next_to

        for m in ModelStore().list():
            if m.mmproj and Path(m.path).resolve() == model_path.resolve() and Path(m.mmproj).is_file():
                return m.mmproj
        found = _mmproj_next_to(model_path)
    except OSError:
        return None
    if found is None:
        return None
    from qwen_tui.models.info import mmproj_problem

    return str(found) if mmproj_problem(found) is None else None


def vision_settings(model_path: str | Path, mmproj: str | None, gpu: bool) -> tuple[dict, list[str]]:
    """LoadParams fields for vision, from `[vision]` in config.toml. ({} when there is no projector.)

    [vision] enabled = true        use a projector when one is found
             mmproj = "PATH"       this projector, for every model
             image_max_tokens = N  cap per image (default 1024 on CPU, 2048 with a GPU)
    """
    from qwen_tui.config import load_table

    table, problems = load_table("vision")
    if table.get("enabled", True) is False or mmproj == "":
        return {}, problems
    projector = mmproj or (table.get("mmproj") if isinstance(table.get("mmproj"), str) else None) or find_mmproj(model_path)
    if not projector:
        return {}, problems
    limit = table.get("image_max_tokens", DEFAULT_MAX_TOKENS_GPU if gpu else DEFAULT_MAX_TOKENS_CPU)
    if not isinstance(limit, int) or limit < 16:
        problems.append(f"[vision] image_max_tokens must be an integer >= 16, not {limit!r}; using the default")
        limit = DEFAULT_MAX_TOKENS_GPU if gpu else DEFAULT_MAX_TOKENS_CPU
    return {"mmproj": str(Path(projector).expanduser()), "image_max_tokens": limit}, problems


def split_images(messages: list[dict]) -> tuple[list[dict], list[str]]:
    """Messages for the template (images as content parts) and the image paths, in prompt order."""
    images: list[str] = []
    out: list[dict] = []
    for message in messages:
        paths = message.get("images") or []
        if not paths:
            out.append(message)
            continue
        rest = {k: v for k, v in message.items() if k not in ("images", "content")}
        parts = [{"type": "image"} for _ in paths] + [{"type": "text", "text": message.get("content") or ""}]
        images.extend(str(p) for p in paths)
        out.append({**rest, "content": parts})
    return out, images


def image_paths_in(text: str) -> tuple[str, list[str]]:
    """Image files named in a prompt (a pasted or dropped path, possibly quoted): (text without them, paths)."""
    import shlex

    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        words = text.split()
    found = []
    for word in words:
        candidate = Path(word.removeprefix("file://")).expanduser()
        if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
            found.append(str(candidate.resolve()))
    if not found:
        return text, []
    rest = text
    for word in words:
        if str(Path(word.removeprefix("file://")).expanduser().resolve()) in found:
            for form in (f"'{word}'", f'"{word}"', word):
                rest = rest.replace(form, "", 1) if form in rest else rest
    return " ".join(rest.split()), found
