"""Where the file tools may look: the workspace (the folder qwen-tui was started in) and extra roots.

    ws, problems = Workspace.from_config(ctx.workspace)       # [tools.files] extra_roots
    real = ws.resolve("src/app.py")        # the resolved real path, or PathRefused (a clear message)
    ws.outside("../x")                     # the real path when it is outside every root, else None
    fd = ws.open_file(real)                # opened, then re-checked through /proc/self/fd

Every path is resolved to its *real* path (``..``, ``~`` and every symlink followed, strictly, so a
symlink loop is an error) before it is compared with the roots, so a symlink inside the workspace
that points outside is refused exactly like ``../..`` or an absolute path elsewhere. NUL bytes and
text that cannot be a file name are refused too. The check is repeated on the opened file
descriptor, which closes the window where a symlink could be swapped in between check and open.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from pathspec import GitIgnoreSpec

__all__ = ["PathRefused", "Workspace", "WalkEntry", "walk_files", "IgnoreStack", "glob_matcher"]


class PathRefused(ValueError):
    """A path the file tools will not touch (outside the workspace, a symlink loop, bad text)."""


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


@dataclass(frozen=True)
class Workspace:
    root: Path
    extra_roots: tuple[Path, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", _real(self.root))
        object.__setattr__(self, "extra_roots", tuple(_real(r) for r in self.extra_roots if _real(r) != _real(self.root)))

    @classmethod
    def from_config(cls, root: str | Path, table: dict | None = None) -> tuple["Workspace", list[str]]:
        """The workspace plus ``[tools.files] extra_roots`` (list of folders; ``~`` expanded,
        relative ones taken from `root`). Returns (workspace, problems)."""
        problems: list[str] = []
        if table is None:
            from qwen_tui.config import load_table

            table, problems = load_table("tools.files")
        roots = table.get("extra_roots", [])
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            problems.append("[tools.files] extra_roots must be a list of folder names; ignored")
            roots = []
        extra = []
        for name in roots:
            path = Path(os.path.expanduser(name))
            path = path if path.is_absolute() else Path(root) / path
            if path.is_dir():
                extra.append(path)
            else:
                problems.append(f"[tools.files] extra_roots: {name} is not a folder; ignored")
        return cls(Path(root), tuple(extra)), problems

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.root, *self.extra_roots)

    def contains(self, real: Path) -> bool:
        """Whether an already-resolved real path lies in a root (purely lexical: resolve first)."""
        return ".." not in real.parts and any(real == r or real.is_relative_to(r) for r in self.roots)

    def describe_roots(self) -> str:
        extra = f" or the extra roots {', '.join(map(str, self.extra_roots))}" if self.extra_roots else ""
        return f"the workspace {self.root}{extra}"

    def _absolute(self, path: str | Path) -> Path:
        if isinstance(path, Path):
            path = str(path)
        if not isinstance(path, str):
            raise PathRefused(f"a path must be a string, not {type(path).__name__}")
        if path == "":
            raise PathRefused("the path is empty (use \".\" for the workspace itself)")
        if "\x00" in path:
            raise PathRefused(f"{path!r} contains a NUL byte: refused")
        try:
            os.fsencode(path)
        except UnicodeError:
            raise PathRefused(f"{path!r} is not a valid file name (it cannot be encoded): refused") from None
        if path.startswith("~"):
            path = os.path.expanduser(path)
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.root / candidate

    def _strict(self, shown: str, absolute: Path) -> Path:
        try:
            return Path(os.path.realpath(absolute, strict=True))
        except OSError as exc:
            if exc.errno == errno.ELOOP or "loop" in str(exc).lower():
                raise PathRefused(f"{shown!r} goes through a symlink loop: refused") from None
            if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise FileNotFoundError(f"no such file or folder: {shown}") from None
            raise PathRefused(f"{shown!r} cannot be resolved ({exc.strerror or exc}): refused") from None

    def resolve(self, path: str | Path, *, allow_outside: bool = False) -> Path:
        """The real path of an existing file or folder inside a root; raises `PathRefused` (outside,
        symlink loop, bad name) or `FileNotFoundError`. `allow_outside` (after the user agreed)
        still refuses loops and bad names but accepts any location."""
        absolute = self._absolute(path)
        if not allow_outside:
            loose = _real(absolute)  # non-strict first: an escape is reported as such, existing or not
            if not self.contains(loose):
                raise PathRefused(self._outside_message(str(path), loose))
        real = self._strict(str(path), absolute)
        if not allow_outside and not self.contains(real):
            raise PathRefused(self._outside_message(str(path), real))
        return real

    def _outside_message(self, shown: str, real: Path) -> str:
        where = "" if str(real) == shown else f" (it resolves to {real})"
        if ".." in real.parts:
            return f"{shown!r} goes through a symlink loop: refused"
        return (f"{shown!r} is outside {self.describe_roots()}{where}: refused. To read it anyway, "
                "call the tool again with outside_workspace=true: the user will be asked")

    def outside(self, path: object) -> Path | None:
        """The real path when `path` lies outside every root (for approval checks), else None.
        Unusable paths count as inside here: the tool itself refuses them with a message."""
        try:
            absolute = self._absolute(path)  # type: ignore[arg-type]
        except PathRefused:
            return None
        real = _real(absolute)
        return None if self.contains(real) else real

    def display(self, real: Path) -> str:
        """`real` relative to the workspace when inside it, else absolute."""
        if real == self.root:
            return "."
        return str(real.relative_to(self.root)) if real.is_relative_to(self.root) else str(real)

    def open_file(self, real: Path, *, allow_outside: bool = False) -> int:
        """Open a resolved regular file read-only (no following a swapped-in symlink, no blocking on
        a FIFO) and re-check where the descriptor really points. Returns the fd (caller closes)."""
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathRefused(f"{real} changed into a symlink while being opened: refused") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
                raise IsADirectoryError(f"{self.display(real)} is {kind}") if kind == "a folder" else PathRefused(f"{self.display(real)} is {kind} (a device, FIFO or socket): refused")
            proc = Path(f"/proc/self/fd/{fd}")
            if not allow_outside and proc.exists():
                actual = Path(os.readlink(proc))
                if not self.contains(actual):
                    raise PathRefused(f"{real} is outside {self.describe_roots()} once opened: refused")
            os.set_blocking(fd, True)
            return fd
        except BaseException:
            os.close(fd)
            raise


class IgnoreStack:
    """The .gitignore files that apply in one folder, from the top down, each matched (by `pathspec`,
    with git's semantics) against paths relative to its own folder; the last matching rule wins and
    deeper files win, as in git."""

    def __init__(self, levels: tuple[tuple[Path, GitIgnoreSpec], ...] = ()) -> None:
        self.levels = levels

    def entered(self, folder: Path) -> "IgnoreStack":
        """This stack plus folder/.gitignore when it has one (a regular file of sane size only:
        never block on a FIFO named .gitignore)."""
        path = folder / ".gitignore"
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode) or info.st_size > 1_000_000:
                return self
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return self
        spec = GitIgnoreSpec.from_lines(text.splitlines())
        if not any(p.include is not None for p in spec.patterns):  # only comments and blank lines
            return self
        return IgnoreStack(self.levels + ((folder, spec),))

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = False
        for folder, spec in self.levels:
            try:
                rel = path.relative_to(folder).as_posix()
            except ValueError:
                continue
            if rel == ".":
                continue
            include = spec.check_file(rel + "/" if is_dir else rel).include
            if include is not None:
                verdict = include
        return verdict


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A test for "/"-separated paths relative to a folder: `*` and `?` stay within a folder and
    `**/` spans folders, so "*.py" matches only at the top and "**/*.py" at any depth. The pattern is
    compiled by `pathspec` as an anchored gitignore pattern; a path that gitignore would match only
    because a folder above it matches ("src" for "src/app.py") is not a glob match."""
    [compiled] = GitIgnoreSpec.from_lines(["/" + pattern.strip("/")]).patterns
    regex = compiled.regex
    if regex is None:
        return lambda rel: False

    def matches(rel: str) -> bool:
        found = regex.match(rel)
        return found is not None and not ("ps_d" in regex.groupindex and found.group("ps_d"))
    return matches


class WalkEntry(NamedTuple):
    path: Path  # as found under `start` (relative_to(start) always works)
    real: Path  # the file to open (the target, for a symlink)
    shown: str  # what the model is shown (relative to the workspace when inside it)
    is_dir: bool


def walk_files(ws: Workspace, start: Path, *, gitignore: bool = True, include_dirs: bool = False) -> Iterator[WalkEntry]:
    """Yield a `WalkEntry` for each file (and folder, with `include_dirs`) under the resolved folder `start`, in
    sorted order: ``.git`` folders skipped, ``.gitignore`` rules (from the root of `start`'s workspace
    root down) applied when `gitignore`, symlinked folders not followed, symlinked files whose
    target leaves the roots skipped. A `start` that the .gitignore files above it ignore was named on
    purpose: it is walked, with only the .gitignore files from `start` down."""
    root = next((r for r in ws.roots if start == r or start.is_relative_to(r)), None)
    ignores = IgnoreStack()
    if gitignore and root is not None:
        folder = root
        for part in start.relative_to(root).parts:  # the .gitignore files above `start`
            ignores = ignores.entered(folder)
            folder = folder / part
        if ignores.ignored(start, True):
            ignores = IgnoreStack()
    stack = [(start, ignores)]
    while stack:
        folder, rules = stack.pop()
        if gitignore:
            rules = rules.entered(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir and entry.name == ".git":
                continue
            if gitignore and rules.ignored(path, is_dir):
                continue
            shown = ws.display(path)
            if is_dir:
                if include_dirs:
                    yield WalkEntry(path, path, shown, True)
                subfolders.append((path, rules))
                continue
            real = path
            if is_link:
                real = _real(path)
                if not ws.contains(real) or not real.is_file():
                    continue
            yield WalkEntry(path, real, shown, False)
        stack.extend(reversed(subfolders))
