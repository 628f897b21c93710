"""Parameters that cross from the app to the inference process (plain, picklable dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeculativeParams:
    """Draft-and-verify decoding (engine/speculative.py); greedy output is unchanged by it.

    mode: "auto" (MTP when the GGUF carries NextN tensors, else plain decoding), "mtp",
    "lookup" (drafts copied from earlier in the context: pays off when the model quotes), "off".
    """

    mode: str = "auto"
    draft_max: int = 3  # tokens drafted per step (also the recurrent-state rollback depth)
    p_min: float = 0.0  # MTP: stop drafting below this head confidence (top-10 softmax); llama.cpp: 0
    ngram_min: int = 2  # lookup: shortest suffix that must match earlier context
    ngram_max: int = 4
    adaptive: bool = True  # pause drafting while drafted steps are measured slower than plain ones


# What `flash_attn = "auto"` means on a CPU-only load: off. benchmarks/flash_attn.py, two runs on
# this project's 2-core CPU (docs/context.md): FA on vs off, mean over the demo model, the tiny
# qwen35 and the 0.8B-shaped qwen35 at 0/2K/8K cached tokens, took 1.06x / 1.10x the prompt-eval
# time and decoded at 0.94x / 0.93x the speed; at 8K the demo model evaluated prompts 1.44x / 1.58x
# slower and decoded at half the speed with FA on. llama.cpp's own auto would turn it on.
CPU_FLASH_ATTN = 0


def flash_attn_type(requested: int, gpu_layers: int) -> int:
    """The llama_flash_attn_type a context gets: the request, or for "auto" on CPU our measured default."""
    return CPU_FLASH_ATTN if requested == -1 and gpu_layers == 0 else requested


@dataclass(frozen=True)
class LoadParams:
    path: str
    n_ctx: int
    n_threads: int
    n_threads_batch: int
    n_gpu_layers: int = 0
    use_extra_bufts: bool = True
    n_batch: int = 512
    # [speed] flash_attn: -1 auto, 0 off, 1 on. Auto is llama.cpp's choice when layers run on a
    # GPU, and CPU_FLASH_ATTN on CPU only (llama.cpp's auto would enable it there too).
    flash_attn: int = -1
    # Logits rows reserved per batch. We need one per prompt chunk (and a few for draft
    # verification later); llama.cpp's default (n_batch) costs n_vocab x 512 floats: 485 MiB of
    # compute buffer for Qwen 3.5's 248K vocabulary.
    n_outputs_max: int = 16
    # Context checkpoints (hybrid/recurrent models): how many, and how many MiB in all ([context]).
    max_checkpoints: int = 32
    checkpoint_mib: int = 1024
    speculative: SpeculativeParams = SpeculativeParams(mode="off")
    # Thread auto-tuning (engine/thread_tuning.py): measure at first load, adapt to a busy machine.
    # Off when the user asked for explicit thread counts.
    tune_threads: bool = False
    # Image input (engine/vision.py): the vision projector, and the most tokens one image may cost.
    mmproj: str | None = None
    image_max_tokens: int = 1024


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_k: int = 20
    top_p: float = 0.8
    min_p: float = 0.0
    seed: int = 0xFFFFFFFF  # llama.cpp's "random"
    grammar: str | None = None  # GBNF; forces the output (tests use it for exact replies)
    ignore_eos: bool = False  # keep generating past end-of-turn (benchmarks need exact lengths)
    # With a trigger, the grammar is lazy: free text until the trigger appears (e.g. "<tool_call>"),
    # then the grammar constrains the rest (its root must start with the trigger text).
    grammar_trigger: str | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs
