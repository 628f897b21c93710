"""What the reply parser (`agent/parser.py`) produces: the parsed reply and the events of a streamed one.

Kept apart from the parser so that code which only passes calls around (the tools, the approval
policy, the plugins, the agent's events) depends on these plain records, not on the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ToolCall:
    """A well-formed call; `raw` is the exact text of its `<tool_call>...</tool_call>`."""

    name: str
    arguments: dict
    raw: str


@dataclass
class ParseError:
    """Something the model got wrong, told to the model: what, and the correct format.

    `raw` is the text concerned: the whole `<tool_call>...</tool_call>` (or up to where it broke
    off), or for text after the calls that text."""

    message: str
    raw: str


@dataclass
class ParsedReply:
    """The reply, parsed; see agent/parser.py's docstring for how content and reasoning are trimmed."""

    content: str
    reasoning: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    index: int


@dataclass(frozen=True)
class ToolCallName:
    index: int
    name: str


@dataclass(frozen=True)
class ToolCallArgument:
    index: int
    name: str
    value_so_far: object  # the raw text so far while done is False; the final (coerced) value once done
    done: bool = False


@dataclass(frozen=True)
class ToolCallFinished:
    index: int
    call: ToolCall


@dataclass(frozen=True)
class ToolCallFailed:
    index: int
    error: ParseError


Event = (
    ContentDelta | ReasoningDelta | ToolCallStarted | ToolCallName
    | ToolCallArgument | ToolCallFinished | ToolCallFailed
)
