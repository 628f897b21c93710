"""First-party plugin: read, list, glob and search files, confined to the workspace.

The workspace is the folder qwen-tui was started in plus ``[tools.files] extra_roots``. Paths are
resolved to real paths first (``..``, symlinks, ``~``), so anything that lands outside is refused
with a message; the model may then ask again with ``outside_workspace=true``, which makes the
call ask the user (every time). Written exactly as a user's plugin would be.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
import time
from pathlib import Path

from qwen_tui import hookimpl, tool
from qwen_tui.tools import ToolContext
from qwen_tui.tools.workspace import PathRefused, Workspace, glob_matcher, walk_files

DEFAULTS = {"max_read_chars": 16_000, "max_results": 200, "max_search_file_bytes": 5_000_000}
MAX_LINE_CHARS = 2_000
SEARCH_SECONDS = 20.0
COUNT_LINES_UP_TO = 50_000_000  # bytes: larger files say "of ? lines"
MAGIC = ((b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"), (b"%PDF", "PDF document"),
         (b"PK\x03\x04", "zip archive"), (b"\x7fELF", "ELF executable"), (b"\x1f\x8b", "gzip data"),
         (b"SQLite format 3", "SQLite database"), (b"GGUF", "GGUF model"))
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _settings(ctx: ToolContext) -> tuple[Workspace, dict, list[str]]:
    from qwen_tui.config import load_table

    table, problems = load_table("tools.files")
    ws, more = Workspace.from_config(ctx.workspace, table)
    settings = dict(DEFAULTS)
    for key, default in DEFAULTS.items():
        value = table.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            settings[key] = value
        else:
            problems.append(f"[tools.files] {key} must be a positive integer; using {default}")
    return ws, settings, problems + more


def outside_needs_approval(arguments: dict, workspace: Path) -> str | bool:
    """Ask (every time) when the model asked to go outside the workspace and the path is outside."""
    if not arguments.get("outside_workspace"):
        return False  # inside, or refused by the tool itself
    ws, _ = Workspace.from_config(workspace)
    real = ws.outside(arguments.get("path", "."))
    return f"the model wants to read {real}, outside the workspace" if real is not None else False


def _with_notes(text: str, problems: list[str]) -> str:
    return text + "".join(f"\n[config: {p}]" for p in problems)


def sniff(sample: bytes) -> tuple[str | None, str]:
    """(encoding, "") for text, (None, what it looks like) for binary data."""
    for bom, encoding in BOMS:
        if sample.startswith(bom):
            return encoding, ""
    for magic, kind in MAGIC:
        if sample.startswith(magic):
            return None, kind
    if b"\x00" in sample:
        return None, "binary data"
    controls = sum(1 for b in sample if b < 32 and b not in b"\t\n\r\f\b\x1b")
    if sample and controls / len(sample) > 0.1:
        return None, "binary data"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8", ""
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252", ""
    except UnicodeDecodeError:
        return "latin-1", ""


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def bounded_lines(text: io.TextIOBase, cap: int):
    """Yield (line, its full length) with at most `cap` + 1 characters of any line kept in memory
    (a 1 GB minified file on one line is skipped through, not loaded)."""
    while True:
        piece = text.readline(cap + 1)
        if not piece:
            return
        length = len(piece)
        if len(piece) > cap and not piece.endswith("\n"):
            while True:
                more = text.readline(65_536)
                length += len(more)
                if not more or more.endswith("\n"):
                    break
        yield piece, length


def _resolve(ctx: ToolContext, path: str, outside_workspace: bool) -> tuple[Workspace, dict, list[str], Path]:
    ws, settings, problems = _settings(ctx)
    return ws, settings, problems, ws.resolve(path, allow_outside=outside_workspace)


@tool(read_only=True, needs_approval=outside_needs_approval)
def read_file(path: str, offset: int = 1, limit: int | None = None, outside_workspace: bool = False, ctx: ToolContext = None) -> str:
    """Read a text file of the workspace, from line `offset` on (long files come in parts).

    Args:
        path: the file, relative to the workspace (or absolute inside it).
        offset: the first line to show (1 = the start).
        limit: at most this many lines (default: as many as fit in one reply).
        outside_workspace: true to read a file outside the workspace; the user is asked first.
    """
    ctx = ctx or ToolContext()
    if offset < 1:
        raise ValueError("offset is a line number and starts at 1")
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1 (or left out)")
    ws, settings, problems, real = _resolve(ctx, path, outside_workspace)
    if real.is_dir():
        raise IsADirectoryError(f"{ws.display(real)} is a folder: use list_dir or glob")
    budget = settings["max_read_chars"]
    with os.fdopen(ws.open_file(real, allow_outside=outside_workspace), "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        encoding, kind = sniff(raw.read(8192))
        shown = ws.display(real)
        if encoding is None:
            return _with_notes(f"{shown} is a binary file ({kind}, {_size(size)}): not shown as text", problems)
        if size == 0:
            return _with_notes(f"{shown} is empty", problems)
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline=None)
        lines: list[str] = []
        used, number, last, more = 0, 0, 0, False
        lines_in = bounded_lines(text, MAX_LINE_CHARS)
        for number, (line, length) in enumerate(lines_in, start=1):
            if number < offset:
                continue
            if (limit is not None and len(lines) >= limit) or (lines and used + min(length, MAX_LINE_CHARS) > budget):
                more = True
                break
            if length > MAX_LINE_CHARS or length > budget:
                cut = min(MAX_LINE_CHARS, budget)
                line = f"{line[:cut]}[... line {number} cut: {length - cut} more characters]\n"
            lines.append(line)
            used += len(line)
            last = number
        if more and size <= COUNT_LINES_UP_TO:
            number += sum(1 for _ in lines_in)
        total = str(number) if (not more or size <= COUNT_LINES_UP_TO) else "?"
    if not lines:
        raise ValueError(f"offset {offset} is past the end of {shown} ({total} lines)")
    label = "" if encoding in ("utf-8", "utf-8-sig") else f", decoded as {encoding}"
    head = f"[{shown}: lines {offset}-{last} of {total}{label}]\n"
    body = "".join(lines)
    if more:
        body += f"{'' if body.endswith(chr(10)) else chr(10)}[truncated: lines {last + 1}-{total} not shown; use offset={last + 1} to read on]"
    return _with_notes(head + body, problems)


@tool(read_only=True, needs_approval=outside_needs_approval)
def list_dir(path: str = ".", outside_workspace: bool = False, ctx: ToolContext = None) -> str:
    """List a folder of the workspace: sub-folders end with '/', files show their size.

    Args:
        path: the folder, relative to the workspace.
        outside_workspace: true to list a folder outside the workspace; the user is asked first.
    """
    ws, settings, problems, real = _resolve(ctx or ToolContext(), path, outside_workspace)
    if not real.is_dir():
        raise NotADirectoryError(f"{ws.display(real)} is a file: use read_file")
    entries = sorted(os.scandir(real), key=lambda e: (not e.is_dir(follow_symlinks=False), e.name))
    out = []
    for entry in entries[: settings["max_results"]]:
        try:
            if entry.is_symlink():
                target = os.readlink(entry.path)
                inside = ws.contains(Path(os.path.realpath(entry.path)))
                out.append(f"{entry.name} -> {target}{'' if inside else '  (outside the workspace)'}")
            elif entry.is_dir():
                out.append(entry.name + "/")
            else:
                info = entry.stat(follow_symlinks=False)
                out.append(f"{entry.name}  ({_size(info.st_size)})" if stat.S_ISREG(info.st_mode) else f"{entry.name}  (special file)")
        except OSError:
            out.append(f"{entry.name}  (unreadable)")
    if len(entries) > settings["max_results"]:
        out.append(f"[... {len(entries) - settings['max_results']} more entries not shown; use glob to narrow]")
    header = f"[{ws.display(real)}: {len(entries)} entries]"
    return _with_notes("\n".join([header, *out]) if entries else f"{ws.display(real)} is empty", problems)


def _walk_root(ws: Workspace, real: Path, outside_workspace: bool) -> Workspace:
    return ws if ws.contains(real) or not outside_workspace else Workspace(real)


def _check_pattern(pattern: str) -> None:
    if not pattern.strip():
        raise ValueError("the pattern is empty (try \"**/*.py\")")
    if pattern.startswith(("/", "~")) or ".." in pattern.split("/"):
        raise PathRefused(f"the pattern {pattern!r} must be relative and without '..': put the folder in `path`")


@tool(read_only=True, needs_approval=outside_needs_approval)
def glob(pattern: str, path: str = ".", include_ignored: bool = False, outside_workspace: bool = False, ctx: ToolContext = None) -> str:
    """Find files by name pattern, e.g. "**/*.py" (at any depth) or "src/*.ts"; skips what .gitignore ignores.

    Args:
        pattern: a glob relative to `path`: `*` and `?` stay within a folder, `**/` spans folders.
        path: the folder to look in, relative to the workspace.
        include_ignored: true to also list files ignored by .gitignore.
        outside_workspace: true to look outside the workspace; the user is asked first.
    """
    _check_pattern(pattern)
    ws, settings, problems, real = _resolve(ctx or ToolContext(), path, outside_workspace)
    if not real.is_dir():
        raise NotADirectoryError(f"{ws.display(real)} is not a folder")
    regex, found, total, stopped = glob_matcher(pattern), [], 0, ""
    walk_ws = _walk_root(ws, real, outside_workspace)
    deadline = time.monotonic() + SEARCH_SECONDS
    for entry in walk_files(walk_ws, real, gitignore=not include_ignored, include_dirs=True):
        if time.monotonic() > deadline:
            stopped = f"\n[stopped after {SEARCH_SECONDS:g} s; use a narrower path or pattern]"
            break
        if regex(entry.path.relative_to(real).as_posix()):
            total += 1
            if len(found) < settings["max_results"]:
                found.append(entry.shown + ("/" if entry.is_dir else ""))
    if not found:
        return _with_notes(f"no files match {pattern!r} in {ws.display(real)}{stopped}", problems)
    if total > len(found):
        found.append(f"[... {total - len(found)} more matches not shown; use a narrower pattern]")
    return _with_notes("\n".join(found) + stopped, problems)


@tool(read_only=True, needs_approval=outside_needs_approval)
def search(pattern: str, path: str = ".", glob: str | None = None, ignore_case: bool = False, include_ignored: bool = False,
           outside_workspace: bool = False, ctx: ToolContext = None) -> str:
    """Search file contents with a regular expression (Python syntax); prints path:line: text. Skips binary files and what .gitignore ignores.

    Args:
        pattern: the regular expression, e.g. "def \\w+_tool" or "TODO".
        path: the folder (or a single file) to search, relative to the workspace.
        glob: only files whose path (relative to `path`) matches this glob, e.g. "**/*.py".
        ignore_case: true for a case-insensitive search.
        include_ignored: true to also search files ignored by .gitignore.
        outside_workspace: true to search outside the workspace; the user is asked first.
    """
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    if glob is not None:
        _check_pattern(glob)
    ws, settings, problems, real = _resolve(ctx or ToolContext(), path, outside_workspace)
    name_filter = glob_matcher(glob) if glob else None
    if real.is_dir():
        entries = walk_files(_walk_root(ws, real, outside_workspace), real, gitignore=not include_ignored)
        files = ((e.real, e.shown) for e in entries if not name_filter or name_filter(e.path.relative_to(real).as_posix()))
    else:
        files = iter([(real, ws.display(real))])
    hits: list[str] = []
    searched = skipped = used = 0
    stopped = ""
    deadline = time.monotonic() + SEARCH_SECONDS
    for file, shown in files:
        if time.monotonic() > deadline:
            stopped = f"[search stopped after {SEARCH_SECONDS:g} s; use a narrower path or glob]"
            break
        try:
            if file.stat().st_size > settings["max_search_file_bytes"]:
                skipped += 1
                continue
            with os.fdopen(ws.open_file(file, allow_outside=outside_workspace), "rb") as handle:
                data = handle.read()
        except (OSError, PathRefused):
            skipped += 1
            continue
        encoding, _ = sniff(data[:8192])
        if encoding is None:
            continue
        searched += 1
        for number, line in enumerate(data.decode(encoding, errors="replace").splitlines(), start=1):
            if regex.search(line):
                text = line if len(line) <= 300 else line[:300] + " [...]"
                hits.append(f"{shown}:{number}: {text}")
                used += len(hits[-1]) + 1
                if len(hits) >= settings["max_results"] or used > settings["max_read_chars"]:
                    stopped = f"[stopped at {len(hits)} matches; narrow the pattern, path or glob]"
                    break
        if stopped:
            break
    note = f"\n[{skipped} files skipped: too large or unreadable]" if skipped else ""
    if not hits:
        return _with_notes(f"no matches for {pattern!r} in {searched} files{note}", problems)
    return _with_notes("\n".join(hits) + (f"\n{stopped}" if stopped else "") + note, problems)


@hookimpl
def register_tools(register):
    for fn in (read_file, list_dir, glob, search):
        register(fn)
