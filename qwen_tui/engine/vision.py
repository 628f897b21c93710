"""Images for Qwen 3.5 through llama.cpp's multimodal library (mtmd), in the worker process.

llama-cpp-python's `MTMDChatHandler` resets the model and re-encodes every image and the whole
history on every call, and counts tokens where M-RoPE counts positions. Here instead:

- Each image is encoded once (`mtmd_encode_chunk`) and its embeddings are kept, keyed by the
  image's content; a later turn, or a re-evaluation after the context was cut back, decodes
  the kept embeddings (`mtmd_helper_decode_image_chunk`) without running the vision tower again.
- In the prompt's token list an image stands as `n_pos` placeholder ids (negative, unique per
  image), so a position in the list is a position in the model (M-RoPE advances by
  max(w, h) / 32 for an image, not by its token count) and `LlamaRunner`'s prefix reuse and
  checkpoints keep working across images: the same image at the same place compares equal.
- Images are downscaled (Pillow) before encoding so that they cost at most `image_max_tokens`
  (a 1920x1080 screenshot is ~2,040 tokens of 32x32 px at full size).

Like `llama_backend`, this module is imported only inside the worker process.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
from llama_cpp import mtmd_cpp as mtmd

from qwen_tui.engine.errors import EngineError
from qwen_tui.context.image_cost import fit_size  # the same downscale the context budget counts

QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"  # what Qwen 3.5's template writes per image
PLACEHOLDER_STRIDE = 1 << 16  # placeholder ids: -(1 + slot * stride + position in the image)
DEFAULT_IMAGE_MAX_TOKENS_CPU = 1024
EMBEDDINGS_CAP = 512 * 1024 * 1024  # kept image embeddings; beyond it the least recently used are dropped


class VisionError(EngineError):
    pass


@dataclass
class ImageEntry:
    key: str  # sha256 of the (downscaled) RGB pixels and size
    slot: int
    chunk: object  # an owned mtmd_input_chunk (copied out of the tokenize result)
    n_tokens: int
    n_pos: int
    size: tuple[int, int]  # after downscaling
    before: list[int]  # the model's image-begin tokens (<|vision_start|> for Qwen), from mtmd
    after: list[int]  # and image-end tokens
    embeddings: ctypes.Array | None = None  # filled by the first encode
    encodes: int = 0
    decodes: int = 0
    last_used: int = 0

    def placeholders(self) -> list[int]:
        base = 1 + self.slot * PLACEHOLDER_STRIDE
        return [-(base + i) for i in range(self.n_pos)]

    def prompt_tokens(self) -> list[int]:
        return [*self.before, *self.placeholders(), *self.after]


def token_pixels(mmproj: str | Path) -> int:
    """Side of the square one image token covers: patch size x spatial merge (32 for Qwen 3.5)."""
    from qwen_tui.engine.gguf_header import read_header

    meta = read_header(mmproj).metadata
    patch = int(meta.get("clip.vision.patch_size", 16) or 16)
    merge = int(meta.get("clip.vision.spatial_merge_size", 2) or 2)
    return patch * merge


def load_image(source: str | Path | bytes, max_tokens: int, px: int = 32):
    """Open (path or bytes), convert to RGB and downscale with Pillow. Returns a PIL image."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()
    except FileNotFoundError:
        raise VisionError(f"image not found: {source}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise VisionError(f"cannot read the image {source if not isinstance(source, bytes) else ''}: {exc}") from None
    image = image.convert("RGB")
    size = fit_size(image.width, image.height, max_tokens, px)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


@dataclass
class VisionEncoder:
    """mtmd for one loaded text model; tokenizes prompts with images, encodes each image once."""

    runner: object  # LlamaRunner
    mmproj: str
    image_max_tokens: int = DEFAULT_IMAGE_MAX_TOKENS_CPU
    n_threads: int = 1
    use_gpu: bool = False
    embeddings_cap: int = EMBEDDINGS_CAP
    images: dict[str, ImageEntry] = field(default_factory=dict)
    by_slot: dict[int, ImageEntry] = field(default_factory=dict)
    _clock: int = 0

    def __post_init__(self) -> None:
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = self.use_gpu
        params.n_threads = self.n_threads
        params.print_timings = False
        params.warmup = False
        params.image_max_tokens = self.image_max_tokens
        self.px = token_pixels(self.mmproj)
        self.ctx = mtmd.mtmd_init_from_file(self.mmproj.encode(), self.runner.model, params)
        if not self.ctx:
            raise VisionError(f"llama.cpp could not load the vision projector {self.mmproj} "
                              "(not an mmproj for this model? see llama.log)")
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise VisionError(f"{self.mmproj} has no vision encoder")
        self.n_embd = llama_cpp.llama_model_n_embd(self.runner.model)
        self.marker = mtmd.mtmd_default_marker()

    def close(self) -> None:
        for entry in self.images.values():
            mtmd.mtmd_input_chunk_free(entry.chunk)
        self.images.clear()
        self.by_slot.clear()
        if self.ctx:
            mtmd.mtmd_free(self.ctx)
            self.ctx = None

    # -- prompt -> tokens with placeholders ------------------------------------------------

    def tokenize(self, text: str, images: list[str | bytes]) -> list[int]:
        """The prompt's tokens, each image as its placeholders (text: Qwen's image triple or mtmd's marker)."""
        marker = self.marker.decode()
        text = text.replace(QWEN_IMAGE, marker)
        if text.count(marker) != len(images):
            raise VisionError(f"the prompt has {text.count(marker)} image place(s) for {len(images)} image(s)")
        pieces = text.split(marker)
        tokens: list[int] = self.runner.tokenize(pieces[0], parse_special=True)
        extra_cells = 0  # an image fills n_tokens cells of the KV cache but advances positions by n_pos
        for source, piece in zip(images, pieces[1:]):
            entry = self._image(source)
            extra_cells += entry.n_tokens - entry.n_pos
            tokens.extend(entry.prompt_tokens())
            tokens.extend(self.runner.tokenize(piece, parse_special=True))
        if len(tokens) + extra_cells >= self.runner.n_ctx:
            raise VisionError(f"the prompt with its {len(images)} image(s) needs {len(tokens) + extra_cells:,} tokens; "
                              f"the context holds {self.runner.n_ctx:,} (fewer images, or a lower [vision] image_max_tokens)")
        return tokens

    def _image(self, source: str | bytes) -> ImageEntry:
        image = load_image(source, self.image_max_tokens, self.px)
        rgb = image.tobytes()
        key = hashlib.sha256(f"{image.width}x{image.height}:".encode() + rgb).hexdigest()
        if key in self.images:
            return self.images[key]
        buf = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, buf)
        mtmd.mtmd_bitmap_set_id(bitmap, key.encode())
        chunks = mtmd.mtmd_input_chunks_init()
        text = mtmd.mtmd_input_text()
        marker = self.marker
        text.text, text.text_len, text.add_special, text.parse_special = marker, len(marker), False, True
        try:
            rc = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1)
            if rc != 0:
                raise VisionError(f"llama.cpp could not prepare the image (mtmd_tokenize: {rc})")
            chunk = None
            before: list[int] = []
            after: list[int] = []
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                candidate = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(candidate) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    chunk = mtmd.mtmd_input_chunk_copy(candidate)
                else:  # the model's image-begin / image-end tokens around it
                    n = ctypes.c_size_t(0)
                    ptr = mtmd.mtmd_input_chunk_get_tokens_text(candidate, ctypes.byref(n))
                    (after if chunk is not None else before).extend(ptr[i] for i in range(n.value))
            if chunk is None:
                raise VisionError("llama.cpp produced no image chunk")
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)
        slot = len(self.by_slot)
        entry = ImageEntry(key, slot, chunk, mtmd.mtmd_input_chunk_get_n_tokens(chunk),
                           mtmd.mtmd_input_chunk_get_n_pos(chunk), image.size, before, after)
        self.images[key] = entry
        self.by_slot[slot] = entry
        return entry

    # -- evaluation ---------------------------------------------------------------------------

    @staticmethod
    def has_placeholders(tokens: list[int]) -> bool:
        return min(tokens, default=0) < 0

    def decode(self, tokens: list[int], start_pos: int, logits_last: bool = True) -> int:
        """Evaluate a prompt batch that holds placeholders: text runs through the runner's
        own decode, each image (at its first placeholder) from its kept embeddings."""
        runner = self.runner
        i, n = 0, len(tokens)
        while i < n:
            if tokens[i] >= 0:
                j = i
                while j < n and tokens[j] >= 0:
                    j += 1
                rc = runner._decode(tokens[i:j], start_pos + i, logits_last=logits_last and j == n)
                if rc != 0:
                    return rc
                i = j
                continue
            index = -tokens[i] - 1
            entry = self.by_slot.get(index // PLACEHOLDER_STRIDE)
            if entry is None:
                raise VisionError("the prompt refers to an image this model has not seen")
            offset = index % PLACEHOLDER_STRIDE
            if offset == 0:  # the image starts in this batch: decode all of it now
                rc = self._decode_image(entry, start_pos + i)
                if rc != 0:
                    return rc
            # skip this image's placeholders (the rest of them, when it started in an earlier batch)
            i += entry.n_pos - offset
            i = min(i, n)
        return 0

    def _decode_image(self, entry: ImageEntry, pos: int) -> int:
        if entry.embeddings is None:
            rc = mtmd.mtmd_encode_chunk(self.ctx, entry.chunk)
            if rc != 0:
                raise VisionError(f"the vision encoder failed (code {rc})")
            out = mtmd.mtmd_get_output_embd(self.ctx)
            count = entry.n_tokens * self.n_embd
            entry.embeddings = (ctypes.c_float * count)()
            ctypes.memmove(entry.embeddings, out, count * ctypes.sizeof(ctypes.c_float))
            entry.encodes += 1
            self._evict(keep=entry)
        self._clock += 1
        entry.last_used = self._clock
        new_pos = llama_cpp.llama_pos(pos)
        rc = mtmd.mtmd_helper_decode_image_chunk(
            self.ctx, self.runner.ctx, entry.chunk, entry.embeddings, pos, 0, self.runner.params.n_batch,
            ctypes.byref(new_pos), mtmd.mtmd_helper_post_decode_callback(0), None)
        entry.decodes += 1
        if rc == 0 and new_pos.value != pos + entry.n_pos:
            raise VisionError(f"the image moved the position by {new_pos.value - pos}, expected {entry.n_pos}")
        return rc

    def _evict(self, keep: ImageEntry) -> None:
        """Drop the least recently used embeddings beyond EMBEDDINGS_CAP (re-encoded if needed again)."""
        held = [e for e in self.images.values() if e.embeddings is not None]
        total = sum(ctypes.sizeof(e.embeddings) for e in held)
        for entry in sorted(held, key=lambda e: e.last_used):
            if total <= self.embeddings_cap:
                break
            if entry is not keep:
                total -= ctypes.sizeof(entry.embeddings)
                entry.embeddings = None

    def stats(self) -> dict:
        return {"images": len(self.images), "image_encodes": sum(e.encodes for e in self.images.values()),
                "image_decodes": sum(e.decodes for e in self.images.values()),
                "image_tokens": sum(e.n_tokens for e in self.images.values())}


def attach(runner, params) -> dict:
    """Load the projector for a runner (worker side). Returns what `describe()` reports about it."""
    try:
        runner.vision = VisionEncoder(runner, params.mmproj, image_max_tokens=params.image_max_tokens,
                                      n_threads=params.n_threads_batch, use_gpu=params.n_gpu_layers != 0)
    except EngineError as exc:
        runner.vision = None
        return {"enabled": False, "mmproj": params.mmproj, "error": str(exc)}
    return {"enabled": True, "mmproj": params.mmproj, "image_max_tokens": params.image_max_tokens,
            "token_pixels": runner.vision.px}
