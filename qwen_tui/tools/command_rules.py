"""Workspace rules that let `run_command` run a command without asking: exact command prefixes.

    matching_rule("git status --short", ["git status"]) -> "git status"
    matching_rule("git status; rm -rf ~", ["git status"]) -> None      # chained: never matches
    simple_words("ls -la src") -> (["ls", "-la", "src"], "")  /  (None, "why it is not simple")
    normalise_rule(" git  status ") -> "git status"                     # ValueError for a bad rule
    suggested_rule("git status --short") -> "git status"               # what the approval dialog offers

A rule is a list of words; a command matches when it is a *simple* command whose first words are
exactly the rule's words (``git status`` matches ``git status -s`` but not ``git statusx`` nor
``git stash``). A command is simple only when the shell can do nothing but run one program with
literal arguments, so none of these ever match a rule (even quoted):

- chaining, pipes, background: ``;`` ``&`` ``&&`` ``|`` ``||``, a newline or carriage return;
- substitution and expansion: ``$`` (``$(...)``, ``${...}``, ``$VAR``, ``$'...'``), backticks,
  ``(``, ``)``, ``{``, ``}``; redirection ``<`` ``>``; comments ``#``; backslash escapes;
  control characters;
- a leading ``NAME=value`` (environment prefix), and programs that run other commands:
  shells (``bash -c``, ``sh -c``, ...), ``env``, ``eval``, ``exec``, ``sudo``, ``xargs``, ...

The rules themselves are stored per workspace (its resolved real path) in the config folder's
``approvals.json``, under ``"commands"``; see `ApprovalPolicy.command_rules()`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Iterable

__all__ = ["simple_words", "normalise_rule", "matching_rule", "suggested_rule", "rules_for", "FORBIDDEN", "WRAPPERS"]

FORBIDDEN = {
    ";": "a ';'", "&": "a '&' (chaining or background)", "|": "a pipe '|'", "`": "a backtick",
    "$": "a '$' (substitution or variable)", "(": "a '('", ")": "a ')'", "{": "a '{'", "}": "a '}'",
    "<": "a redirection '<'", ">": "a redirection '>'", "#": "a '#'", "\\": "a backslash",
    "\n": "a newline", "\r": "a carriage return",
}
WRAPPERS = frozenset({
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox", "env", "eval",
    "exec", "command", "builtin", "source", ".", "sudo", "doas", "su", "xargs", "nohup", "setsid",
    "timeout", "nice", "ionice", "time", "stdbuf", "watch", "chroot", "unshare", "nsenter", "script",
    "parallel", "flock", "strace", "ltrace", "gdb", "run0", "pkexec", "systemd-run",
})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")


def simple_words(command: str) -> tuple[list[str] | None, str]:
    """(the command's words, "") when it is a simple command, else (None, the reason)."""
    if not isinstance(command, str) or not command.strip():
        return None, "the command is empty"
    for char, what in FORBIDDEN.items():
        if char in command:
            return None, f"it contains {what}"
    bad = next((c for c in command if (ord(c) < 32 and c != "\t") or ord(c) == 127), None)
    if bad is not None:
        return None, f"it contains the control character {bad!r}"
    try:
        words = shlex.split(command, comments=False, posix=True)
    except ValueError as exc:
        return None, f"it cannot be split into words ({exc})"
    if not words:
        return None, "the command is empty"
    if _ASSIGNMENT.match(words[0]):
        return None, "it starts with an environment assignment"
    program = os.path.basename(words[0])
    if program in WRAPPERS:
        return None, f"{program} runs other commands"
    return words, ""


def normalise_rule(prefix: str) -> str:
    """The rule's canonical text (its words joined by spaces); ValueError when it could not be safe."""
    words, why = simple_words(prefix)
    if words is None:
        raise ValueError(f"{prefix!r} cannot be a command rule: {why}")
    return shlex.join(words)


def suggested_rule(command: object) -> str | None:
    """The rule the approval dialog may offer for `command`: its program and first argument
    ("git status" for "git status --short", "ls" for "ls"), or None when the command is not simple
    (chained, substituted, a wrapper like ``bash -c``: no rule could ever match it)."""
    if not isinstance(command, str):
        return None
    words, _ = simple_words(command)
    if words is None:
        return None
    try:
        return normalise_rule(shlex.join(words[:2]))
    except ValueError:
        return None


def matching_rule(command: str, rules: Iterable[str]) -> str | None:
    """The first rule whose words start `command`, when `command` is simple; else None."""
    words, _ = simple_words(command)
    if words is None:
        return None
    for rule in rules:
        rule_words, _ = simple_words(rule) if isinstance(rule, str) else (None, "")
        if rule_words and words[: len(rule_words)] == rule_words:
            return rule
    return None


def rules_for(workspace: str | Path) -> list[str]:
    """The command rules stored for `workspace` (its real path) in approvals.json."""
    from qwen_tui.tools.approval import ApprovalPolicy

    return ApprovalPolicy(workspace).command_rules()
