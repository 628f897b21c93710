"""What an attached image costs in the context window, known before the engine encodes it.

An image in a Qwen 3.5 prompt is `<|vision_start|>`, its image tokens, `<|vision_end|>`: it fills
image-tokens + 2 cells of the KV cache (its M-RoPE *positions* are fewer, max(w, h) / 32, but
the window is counted in cells: engine/vision.py). The chat template writes the three special
tokens `<|vision_start|><|image_pad|><|vision_end|>` for it, so a rendered prompt counts
image-tokens - 1 too few per image; TokenCounter (budget.py) adds them.

The count is an *estimate* from the image's size (Pillow reads only the header), done the way
the engine will do it:
1. the worker downscales the image so that it costs at most `image_max_tokens`
   (`fit_size`, which engine/vision.py uses too: ceil(w / px) * ceil(h / px) <= cap, aspect kept);
2. llama.cpp's mtmd (tools/mtmd/mtmd-image.cpp `calc_size_preserved_ratio`, Qwen-VL projectors)
   aligns each side to the nearest multiple of px (patch size x spatial merge, 32 for Qwen 3.5),
   and rescales into [8, image_max_tokens] tokens if it falls outside;
3. image tokens = (w / px) * (h / px).
tests/context/test_image_budget.py checks it against the tokens the engine really used.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

DEFAULT_MAX_TOKENS = 1024  # engine/images.py DEFAULT_MAX_TOKENS_CPU
DEFAULT_TOKEN_PIXELS = 32
MIN_TOKENS = 8  # mtmd's lower limit for Qwen-VL projectors
EDGE_TOKENS = 2  # <|vision_start|> and <|vision_end|>


def fit_size(width: int, height: int, max_tokens: int, px: int = DEFAULT_TOKEN_PIXELS) -> tuple[int, int]:
    """The largest size with the same aspect ratio that costs at most `max_tokens` image tokens (the worker's
    downscale, engine/vision.py, uses this one)."""
    if math.ceil(width / px) * math.ceil(height / px) <= max_tokens:
        return width, height
    scale = math.sqrt(max_tokens * px * px / (width * height))
    w, h = max(px, int(width * scale)), max(px, int(height * scale))
    while math.ceil(w / px) * math.ceil(h / px) > max_tokens:
        w, h = max(px, int(w * 0.97)), max(px, int(h * 0.97))
    return w, h


def mtmd_size(width: int, height: int, max_tokens: int, px: int = DEFAULT_TOKEN_PIXELS,
              min_tokens: int = MIN_TOKENS) -> tuple[int, int]:
    """llama.cpp's smart resize for Qwen-VL projectors (calc_size_preserved_ratio, C++ float maths)."""
    def rounded(x: float) -> int:
        return int(math.floor(x / px + 0.5)) * px  # std::round: halves away from zero

    w, h = max(px, rounded(width)), max(px, rounded(height))
    max_pixels, min_pixels = max_tokens * px * px, min_tokens * px * px
    if w * h > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(px, int(math.floor(height / beta / px)) * px)
        w = max(px, int(math.floor(width / beta / px)) * px)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = int(math.ceil(height * beta / px)) * px
        w = int(math.ceil(width * beta / px)) * px
    return w, h


def tokens_for_size(width: int, height: int, max_tokens: int = DEFAULT_MAX_TOKENS, px: int = DEFAULT_TOKEN_PIXELS) -> int:
    """Image tokens (without the two edge tokens) for an image of this size."""
    w, h = fit_size(width, height, max_tokens, px)
    w, h = mtmd_size(w, h, max_tokens, px)
    return (w // px) * (h // px)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


class ImageCost:
    """Estimated KV cells per image file, cached by (path, size, mtime)."""

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS, px: int = DEFAULT_TOKEN_PIXELS) -> None:
        self.max_tokens, self.px = max_tokens, px
        self._cache: dict[tuple[str, int, int], int] = {}

    @classmethod
    def for_engine(cls, engine) -> ImageCost:
        """The cap and pixels per token the loaded model's projector uses (info.extra["vision"])."""
        info = getattr(engine, "info", None)
        vision = ((getattr(info, "extra", None) or {}).get("vision") or {}) if info is not None else {}
        return cls(int(vision.get("image_max_tokens") or DEFAULT_MAX_TOKENS),
                   int(vision.get("token_pixels") or DEFAULT_TOKEN_PIXELS))

    def cells(self, path: str | Path) -> int:
        """KV cells the image fills: image tokens + 2 (0 for a file that is not a readable image:
        the engine refuses it with its own message)."""
        try:
            st = os.stat(path)
        except OSError:
            return 0
        key = (str(path), st.st_size, st.st_mtime_ns)
        cached = self._cache.get(key)
        if cached is None:
            size = image_size(path)
            cached = 0 if size is None else tokens_for_size(*size, self.max_tokens, self.px) + EDGE_TOKENS
            self._cache[key] = cached
        return cached

    def message_cells(self, message: dict) -> int:
        return sum(self.cells(p) for p in message.get("images") or [])
