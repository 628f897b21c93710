"""Images for a server: the messages' image paths as OpenAI content parts, and what a refusal means.

Messages carry images as file paths (`{"role": "user", "content": "text", "images": [path]}`,
see engine/images.py); an OpenAI-compatible server takes them inline, as
`{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}` parts placed before
the text part (the order Qwen's template gives them locally).

Each image is downscaled first, like the local path does, so that it costs at most
`image_max_tokens` (`[vision]`, default 1024) at Qwen 3.5's 32 px a token: a full-size 4K
screenshot would cost the server ~8,000 tokens and megabytes of upload. The downscale and the
default cap are the ones the context budget assumes for an image (context/image_cost.py), so
with the default the meter counts what is sent (the server may shrink an image further).

A PNG or JPEG that already fits is sent as its own bytes; anything else is re-encoded (WebP
notably: llama-server decodes with stb_image, which does not read it). Every request sends the
whole conversation, so the encoded images are kept (by path, size, mtime and cap; up to
CACHE_BYTES) instead of being decoded, resized and encoded again each turn.
"""

from __future__ import annotations

import base64
import io
import re
import threading
from collections import OrderedDict
from pathlib import Path

from qwen_tui.context.image_cost import DEFAULT_MAX_TOKENS, DEFAULT_TOKEN_PIXELS, fit_size
from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.remote_wire import error_text

SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg"}
CACHE_BYTES = 64 * 1024 * 1024  # encoded data URLs kept; the least recently used go first
_cache: OrderedDict[tuple, str] = OrderedDict()
_cache_lock = threading.Lock()
_ABOUT_IMAGES = re.compile(r"image|multi-?modal|vision|mmproj|media|content\[\]\.type|content type", re.IGNORECASE)


class ImageUnreadable(EngineError):
    """An image in the conversation cannot be read (the message names it, one line)."""


def image_max_tokens() -> int:
    """`[vision] image_max_tokens` from the config, else DEFAULT_MAX_TOKENS (1024)."""
    from qwen_tui.config import load_table

    table, _problems = load_table("vision")  # its problems are reported where the local engine loads
    limit = table.get("image_max_tokens")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 16 else DEFAULT_MAX_TOKENS


def data_url(path: str | Path, max_tokens: int) -> str:
    """The image at `path` as a `data:` URL, downscaled to fit `max_tokens`. Raises ImageUnreadable."""
    try:
        stat = Path(path).stat()
    except OSError:
        stat = None
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, max_tokens) if stat else None
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    url = _encode(path, max_tokens)
    if key is not None:
        with _cache_lock:
            _cache[key] = url
            while sum(map(len, _cache.values())) > CACHE_BYTES and len(_cache) > 1:
                _cache.popitem(last=False)
    return url


def _encode(path: str | Path, max_tokens: int) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            size = fit_size(image.width, image.height, max_tokens, DEFAULT_TOKEN_PIXELS)  # 32 px a token (Qwen 3.5)
            if size == image.size and image.format in SENT_AS_IS:
                return f"data:{SENT_AS_IS[image.format]};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"
            kind = "JPEG" if image.format == "JPEG" else "PNG"
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha and kind == "PNG" else "RGB")
            if size != image.size:
                image = image.resize(size, Image.Resampling.BICUBIC)
            out = io.BytesIO()
            image.save(out, kind, **({"quality": 90} if kind == "JPEG" else {}))
    except FileNotFoundError:
        raise ImageUnreadable(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageUnreadable(f"cannot read the image {path}: {' '.join(str(exc).split())}") from None
    return f"data:{SENT_AS_IS[kind]};base64,{base64.b64encode(out.getvalue()).decode()}"


def count_images(messages: list[dict]) -> int:
    return sum(len(m.get("images") or []) for m in messages)


def with_image_parts(messages: list[dict], max_tokens: int) -> list[dict]:
    """Messages with their `images` turned into OpenAI content parts (others are left as they are).
    Raises ImageUnreadable for the first image that cannot be read."""
    out = []
    for message in messages:
        paths = message.get("images") or []
        rest = {k: v for k, v in message.items() if k != "images"}
        if not paths:
            out.append(rest)
            continue
        parts: list[dict] = [{"type": "image_url", "image_url": {"url": data_url(p, max_tokens)}} for p in paths]
        text = message.get("content")
        if isinstance(text, str) and text:
            parts.append({"type": "text", "text": text})
        out.append({**rest, "content": parts})
    return out


def without_images(messages: list[dict]) -> list[dict]:
    """For a server that refused images: each image becomes a short note in its message's text."""
    out = []
    for message in messages:
        paths = message.get("images") or []
        rest = {k: v for k, v in message.items() if k != "images"}
        if paths:
            names = ", ".join(Path(p).name for p in paths)
            note = f"[{len(paths)} image(s) not sent: the server does not accept images ({names})]"
            text = rest.get("content") if isinstance(rest.get("content"), str) else ""
            rest["content"] = f"{text}\n\n{note}" if text else note
        out.append(rest)
    return out


def refusal(status: int, body: str | bytes, *, url: str, n_images: int) -> str | None:
    """The one line for an HTTP error to a request that carried images, when the images are
    the likely cause (None: an ordinary error, reported as such)."""
    if not n_images or status not in (400, 413, 415, 422, 500):
        return None
    detail = error_text(body)
    said = f": {detail}" if detail else ""
    if status == 413:
        return (f"the server at {url} refused the request with {n_images} image(s) as too large (HTTP 413{said}); "
                "send fewer images or lower [vision] image_max_tokens")
    if status != 415 and not _ABOUT_IMAGES.search(detail):
        return None
    return (f"the server at {url} does not accept images (HTTP {status}{said}); the model it serves may not see "
            "images (llama-server needs --mmproj). Later messages are sent without them")
