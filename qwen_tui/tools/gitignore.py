""".gitignore rules (git's wildmatch semantics) and glob patterns, translated to regular expressions.

    stack = IgnoreStack().entered(folder)       # reads folder/.gitignore when it has one
    stack.ignored(path, is_dir) -> bool         # the last matching rule wins, deeper files win
    glob_regex("src/**/*.py") -> re.Pattern     # for the glob tool (matches "/"-separated paths)

Supported, as git does: comments (``#``), blank lines, ``\\`` escapes, trailing spaces, ``!``
negation, a trailing ``/`` (folders only), a leading or middle ``/`` (anchored to the
.gitignore's folder, otherwise the pattern matches at any depth), ``*``, ``?``, ``[...]`` /
``[!...]`` and ``**`` (``**/x``, ``x/**``, ``a/**/b``). As in git, a file inside an ignored
folder cannot be re-included (the walker never enters ignored folders).
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IgnoreRule", "IgnoreStack", "parse_gitignore", "glob_regex", "translate"]


def translate(pattern: str) -> str:
    """The regex body (no anchors) for a wildmatch pattern whose segments are split by '/'."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and (i == 0 or pattern[i - 1] == "/") and i + 2 == n:
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1:j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[{'^/' if negate else ''}{body}]" if negate else f"(?!/)[{body}]")
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern:
    """A glob relative to a folder ("*.py" only at the top, "**/*.py" at any depth)."""
    return re.compile("^" + translate(pattern.strip("/")) + "$", re.DOTALL)


@dataclass(frozen=True)
class IgnoreRule:
    regex: re.Pattern
    negate: bool
    dir_only: bool


def _strip_trailing_spaces(line: str) -> str:
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    return line


def parse_gitignore(text: str) -> list[IgnoreRule]:
    rules = []
    for raw in text.splitlines():
        line = _strip_trailing_spaces(raw.rstrip("\r"))
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/") and not line.endswith("\\/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        body = translate(line.lstrip("/"))
        regex = re.compile(("^" if anchored else "^(?:.*/)?") + body + "$", re.DOTALL)
        rules.append(IgnoreRule(regex, negate, dir_only))
    return rules


class IgnoreStack:
    """The .gitignore files that apply in one folder: (folder, rules) from the top down."""

    def __init__(self, levels: tuple[tuple[Path, tuple[IgnoreRule, ...]], ...] = ()) -> None:
        self.levels = levels

    def entered(self, folder: Path) -> "IgnoreStack":
        path = folder / ".gitignore"
        try:  # a regular file of sane size only: never block on a FIFO named .gitignore
            info = path.stat()
            if not stat.S_ISREG(info.st_mode) or info.st_size > 1_000_000:
                return self
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return self
        rules = tuple(parse_gitignore(text))
        return IgnoreStack(self.levels + ((folder, rules),)) if rules else self

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = False
        for folder, rules in self.levels:
            try:
                rel = path.relative_to(folder).as_posix()
            except ValueError:
                continue
            for rule in rules:
                if rule.dir_only and not is_dir:
                    continue
                if rule.regex.match(rel):
                    verdict = not rule.negate
        return verdict
