"""`[speed]` in the config file: draft-and-verify decoding and thread tuning (app side).

    [speed]
    speculative = "auto"   # "auto": MTP when the GGUF has NextN tensors | "mtp" | "lookup" | "off"
    draft_max = 3          # tokens drafted per step, 1..8
    mtp_p_min = 0.0        # MTP stops drafting below this confidence, 0..1 (llama.cpp default: 0)
    lookup_ngram_min = 2   # prompt lookup: shortest matching suffix
    lookup_ngram_max = 4
    draft_adaptive = true  # pause drafting while drafted steps measure slower than plain ones
    tune_threads = true    # measure thread counts at first load, use fewer when the CPU is busy
    flash_attn = "auto"    # "auto": llama.cpp's choice with a GPU, off on CPU (params.py CPU_FLASH_ATTN) | "on" | "off"
"""

from __future__ import annotations

from qwen_tui.engine.params import SpeculativeParams

MODES = ("auto", "mtp", "lookup", "off")
FLASH_ATTN = {"auto": -1, "on": 1, "off": 0}  # llama.cpp's llama_flash_attn_type values


def speed_settings(table: dict | None = None) -> tuple[SpeculativeParams, bool, list[str]]:
    """(speculative params, tune threads, problems); a bad value means its default plus a note."""
    problems: list[str] = []
    if table is None:
        from qwen_tui.config import load_table

        table, problems = load_table("speed")
    d = SpeculativeParams()

    def number(key: str, default, lo, hi, kind):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or not lo <= value <= hi:
            problems.append(f"[speed] {key} must be a {'number' if kind is float else 'whole number'} "
                            f"from {lo} to {hi}, not {value!r}; using {default}")
            return default
        return kind(value)

    mode = table.get("speculative", d.mode)
    if mode not in MODES:
        problems.append(f"[speed] speculative must be one of {', '.join(MODES)}, not {mode!r}; using {d.mode}")
        mode = d.mode
    n_min = number("lookup_ngram_min", d.ngram_min, 1, 16, int)
    n_max = number("lookup_ngram_max", max(d.ngram_max, n_min), n_min, 16, int)
    def flag(key: str) -> bool:
        value = table.get(key, True)
        if not isinstance(value, bool):
            problems.append(f"[speed] {key} must be true or false, not {value!r}; using true")
            return True
        return value

    sp = SpeculativeParams(mode, number("draft_max", d.draft_max, 1, 8, int),
                           number("mtp_p_min", d.p_min, 0.0, 1.0, float), n_min, n_max, flag("draft_adaptive"))
    return sp, flag("tune_threads"), problems


def flash_attn_setting(table: dict | None = None) -> tuple[int, list[str]]:
    """`[speed] flash_attn` as llama.cpp's flash_attn_type (-1 auto, 0 off, 1 on), and problems."""
    problems: list[str] = []
    if table is None:
        from qwen_tui.config import load_table

        table, problems = load_table("speed")
    value = table.get("flash_attn", "auto")
    if value not in FLASH_ATTN or isinstance(value, bool):
        problems.append(f"[speed] flash_attn must be one of {', '.join(FLASH_ATTN)}, not {value!r}; using auto")
        value = "auto"
    return FLASH_ATTN[value], problems
