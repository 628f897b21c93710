"""How many tokens a conversation takes, exactly, with the loaded model's own tokenizer.

    counter = TokenCounter(engine)            # LocalEngine or FakeEngine: tokenize() and render()
    counter.prompt_tokens(messages, tools=..., thinking=...)   # == len(the prompt the engine sends)
    counter.message_tokens(message)                            # one message's share (cached)
    budget = Budget.for_engine(engine, settings, max_tokens)   # n_ctx - reply reserve, thresholds

Exact and cheap at once: the prompt is rendered with the chat template, then cut before every
`<|im_start|>`. That marker is a special token, so llama.cpp tokenizes the text between special
tokens separately either way: the token count of the whole prompt is the sum of the pieces'
counts (the first use on an engine checks this once against a whole-prompt count and falls back
to whole-prompt counting if it does not hold). Pieces are cached by their text, so a turn only
tokenizes the messages that are new since the last turn.

Images attached to messages (`"images": [path, ...]`) count what they fill in the window: the
template writes three special tokens per image, the engine puts the image's tokens there
(`image_cost.py`: estimated from the image's size the way the engine scales it).

Settings come from the `[context]` table of config.toml (`ContextSettings.from_config`).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

from qwen_tui.context.image_cost import ImageCost

MARK = "<|im_start|>"
IMAGE_MARK_TOKENS = 3  # <|vision_start|><|image_pad|><|vision_end|>, as the template renders an image
CACHE_ENTRIES = 8192


@dataclass(frozen=True)
class ContextSettings:
    """`[context]` in config.toml; every key optional."""

    reply_reserve: int = 4096  # tokens kept free for the answer (capped by max_tokens and n_ctx / 4)
    compact_at: float = 0.85  # compact when the prompt passes this fraction of the budget
    compact_to: float = 0.5  # ... down to about this fraction
    keep_recent_turns: int = 2  # the last N user turns (and their answers, tool calls) stay verbatim
    tool_output_keep_chars: int = 1200  # an elided tool output keeps this many characters (head + tail)
    max_message_fraction: float = 0.5  # one message may take at most this fraction of the budget
    summary_max_tokens: int = 512  # the length of a compaction summary

    @classmethod
    def from_config(cls, table: dict | None = None) -> tuple[ContextSettings, list[str]]:
        """Read `[context]` (or `table`); bad values are reported and replaced by defaults."""
        problems: list[str] = []
        if table is None:
            from qwen_tui.config import load_table

            table, problems = load_table("context")
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls)}
        for key, value in table.items():
            spec = known.get(key)
            if spec is None:  # another feature's key in [context] (checkpoints); the schema checks those
                continue
            default = spec.default
            if isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
                want = "a number between 0 and 1"
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                want = "a whole number >= 0"
            if ok:
                values[key] = float(value) if isinstance(default, float) else value
            else:
                problems.append(f"[context] {key} must be {want}, not {value!r}; using {default}")
        settings = cls(**values)
        if settings.compact_to >= settings.compact_at:
            problems.append(f"[context] compact_to ({settings.compact_to}) must be below compact_at "
                            f"({settings.compact_at}); using {cls.compact_to}")
            settings = cls(**{**values, "compact_to": min(cls.compact_to, settings.compact_at / 2)})
        return settings, problems


@dataclass(frozen=True)
class Budget:
    """The token budget of one request: the prompt may use `limit` = n_ctx - reserve."""

    n_ctx: int
    reserve: int
    compact_at: float = ContextSettings.compact_at
    compact_to: float = ContextSettings.compact_to

    @classmethod
    def for_engine(cls, engine: Any, settings: ContextSettings | None = None, max_tokens: int | None = None) -> Budget:
        settings = settings or ContextSettings()
        n_ctx = engine.info.n_ctx
        reserve = min(settings.reply_reserve, max_tokens if max_tokens else settings.reply_reserve, n_ctx // 4)
        return cls(n_ctx, max(1, reserve), settings.compact_at, settings.compact_to)

    @property
    def limit(self) -> int:
        return self.n_ctx - self.reserve

    @property
    def threshold(self) -> int:
        """Past this many prompt tokens a turn starts with a compaction."""
        return int(self.limit * self.compact_at)

    @property
    def target(self) -> int:
        return int(self.limit * self.compact_to)

    def level(self, used: int) -> str:
        """For the meter: "ok", "near" (past 90% of the compaction threshold) or "full"."""
        if used >= self.threshold:
            return "full"
        return "near" if used >= 0.9 * self.threshold else "ok"


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class TokenCounter:
    """Counts with `engine.tokenize` (the model's own tokenizer), caching per piece of text."""

    def __init__(self, engine: Any, *, cache_entries: int = CACHE_ENTRIES) -> None:
        self.engine = engine
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_entries = cache_entries
        self._additive: bool | None = None  # does splitting at MARK keep counts exact? checked once
        self.tokenized_chars = 0  # how much text actually went through the tokenizer (tests, benchmarks)
        self._images: ImageCost | None = None  # made at first use: the engine's projector settings

    # -- text --------------------------------------------------------------------------------

    def count_text(self, text: str) -> int:
        if not text:
            return 0
        key = _key(text)
        n = self._cache.get(key)
        if n is not None:
            self._cache.move_to_end(key)
            return n
        n = len(self.engine.tokenize(text, parse_special=True))
        self.tokenized_chars += len(text)
        self._cache[key] = n
        if len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return n

    def _bos(self, prompt: str) -> int:
        info = getattr(self.engine, "info", None)
        extra = getattr(info, "extra", None) or {}
        bos_token = getattr(info, "bos_token", "") or ""
        if extra.get("add_bos") and extra.get("bos_id") is not None and not (bos_token and prompt.startswith(bos_token)):
            return 1
        return 0

    def text_prompt_tokens(self, prompt: str) -> int:
        """Tokens of a rendered prompt, as the engine will send it (BOS included)."""
        pieces = split_at_marks(prompt)
        if len(pieces) <= 1 or self._additive is False:
            return self.count_text(prompt) + self._bos(prompt)
        total = sum(self.count_text(p) for p in pieces)
        if self._additive is None:
            whole = len(self.engine.tokenize(prompt, parse_special=True))
            self._additive = whole == total
            total = whole
        return total + self._bos(prompt)

    # -- messages ----------------------------------------------------------------------------

    def render(self, messages: list[dict], *, tools: list[dict] | None = None, thinking: bool | None = None) -> str:
        render = getattr(self.engine, "render", None)
        if render is not None:
            return render(messages, tools=tools, thinking=thinking)
        from qwen_tui.engine.template import render_chat

        return render_chat(None, messages, tools=tools, thinking=thinking)

    @property
    def images(self) -> ImageCost:
        if self._images is None:
            self._images = ImageCost.for_engine(self.engine)
        return self._images

    def prompt_tokens(self, messages: list[dict], *, tools: list[dict] | None = None, thinking: bool | None = None) -> int:
        """The window this request fills: exactly the tokens the engine will evaluate for its text,
        plus what its images fill (estimated: image_cost.py)."""
        messages = clean(messages)
        paths = [p for m in messages for p in (m.get("images") or [])]
        if not paths:
            return self.text_prompt_tokens(self.render(messages, tools=tools, thinking=thinking))
        from qwen_tui.engine.images import split_images

        parts, _ = split_images(messages)  # as the engine renders them: one image marker triple each
        try:
            text = self.text_prompt_tokens(self.render(parts, tools=tools, thinking=thinking))
        except Exception:  # noqa: BLE001 - a template without image parts (a text model, a plain ChatML one)
            # Count the text alone and each image whole: an estimate either way, and the request
            # itself, not the budget, is where such a template problem gets said.
            text = self.text_prompt_tokens(self.render(messages, tools=tools, thinking=thinking))
            return text + sum(self.images.cells(p) for p in paths)
        # the triple counted 3 tokens; the image fills its tokens + <|vision_start|>/<|vision_end|>
        return text + sum(max(0, self.images.cells(p) - IMAGE_MARK_TOKENS) for p in paths)

    def message_tokens(self, message: dict) -> int:
        """One message's share of a prompt: its ChatML block (role line, content, reasoning and
        calls). Exact for plain user/assistant messages; a close estimate for the others, whose
        exact share depends on their neighbours in the template."""
        text = message.get("content") or ""
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        parts = [MARK, message.get("role", "user"), "\n", text]
        if message.get("reasoning_content"):
            parts += ["<think>\n", message["reasoning_content"], "\n</think>\n\n"]
        if message.get("tool_calls"):
            parts.append(json.dumps(message["tool_calls"], ensure_ascii=False))
        parts.append("<|im_end|>\n")
        return self.count_text("".join(parts)) + (self.images.message_cells(message) if message.get("images") else 0)


def split_at_marks(prompt: str) -> list[str]:
    """The prompt cut before every MARK (the pieces join back to the prompt)."""
    if MARK not in prompt:
        return [prompt]
    pieces = prompt.split(MARK)
    out = [pieces[0]] if pieces[0] else []
    out += [MARK + p for p in pieces[1:]]
    return out


def clean(messages: list[dict]) -> list[dict]:
    """Messages without qwen-tui's private keys (those starting with "_")."""
    return [{k: v for k, v in m.items() if not k.startswith("_")} if any(k.startswith("_") for k in m) else m
            for m in messages]
