"""Run a command as its own process group, with a timeout, a bounded output capture and no secrets.

    result = run_process(["bash", "-c", "make test"], cwd=ws, timeout=60, max_output_bytes=16_000,
                         env=scrub_env(os.environ)[0])
    result.exit_code, result.output, result.timed_out, result.total_bytes, result.elided_bytes

- The command starts in a new session (its own process group, no controlling terminal: a program
  that opens /dev/tty fails instead of taking over qwen-tui's screen), stdin is /dev/null (so an
  interactive `python` or `cat` sees end-of-file and returns), stdout and stderr are one pipe.
- At the timeout the whole group gets SIGTERM; whatever is still alive `grace` seconds later
  (2 s) gets SIGKILL. When the command itself exits, members of its group still running
  (background children: `sleep 100 &`) get SIGTERM, then SIGKILL after a short grace.
  A child that starts its *own* session (`setsid`) escapes the group and is not followed.
- `cancel` (a `threading.Event`, e.g. the tool's `ctx.cancelled`, set when the user presses Esc):
  once set, the whole group gets SIGTERM at once and SIGKILL `cancel_grace` (0.5 s) later; it is
  checked every 0.1 s. The result says `cancelled`.
- Groups still running when qwen-tui exits normally (a command in flight) are SIGKILLed at exit
  (`atexit`); `kill_all()` does the same on demand (e.g. when the user cancels).
- Output memory is bounded whatever the command prints: the first and last bytes are kept
  (`max_output_bytes` together) and the middle is counted as "[... N bytes elided ...]".
- `scrub_env` drops variables whose names look like secrets (``*_KEY``, ``*TOKEN*``,
  ``*SECRET*``, ``*PASSWORD*``, ``HF_TOKEN``, ... plus patterns from config).
"""

from __future__ import annotations

import atexit
import fnmatch
import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

__all__ = ["ProcessResult", "HeadTail", "run_process", "scrub_env", "SECRET_PATTERNS", "group_members", "kill_all"]

SECRET_PATTERNS = (
    "*_KEY", "*_KEY_ID", "*API_KEY*", "*ACCESS_KEY*", "*PRIVATE_KEY*", "*TOKEN*", "*SECRET*",
    "*PASSWORD*", "*PASSWD*", "*CREDENTIAL*", "HF_TOKEN",
)
CHUNK = 256 * 1024
CANCEL_POLL_S = 0.1  # how often a running command looks at its `cancel` event
_live: set[int] = set()  # process groups started here and not yet cleaned up
_live_lock = threading.Lock()


def kill_all() -> int:
    """SIGKILL every command's process group still running; returns how many there were."""
    with _live_lock:
        groups = list(_live)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    return len(groups)


atexit.register(kill_all)


def scrub_env(env: Mapping[str, str], extra_patterns: Iterable[str] = (), keep: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """(a copy of `env` without secret-looking variables, the sorted names removed). Patterns are
    shell globs matched case-insensitively; names in `keep` are never removed."""
    patterns = [p.upper() for p in (*SECRET_PATTERNS, *extra_patterns)]
    keep_set = {k.upper() for k in keep}
    clean, removed = {}, []
    for name, value in env.items():
        upper = name.upper()
        if upper not in keep_set and any(fnmatch.fnmatchcase(upper, p) for p in patterns):
            removed.append(name)
        else:
            clean[name] = value
    return clean, sorted(removed)


class HeadTail:
    """Keeps the first `limit // 2` and the last `limit - limit // 2` bytes fed to it."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_limit:
            self.tail += chunk[-self.tail_limit:]
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def elided(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not self.elided:
            return head + tail
        return f"{head}\n[... {self.elided} bytes elided ...]\n{tail}"


@dataclass
class ProcessResult:
    exit_code: int | None  # None: killed by a signal (see `signal`)
    output: str
    total_bytes: int
    elided_bytes: int
    timed_out: bool
    duration_s: float
    pid: int
    signal: str | None = None  # the signal that ended it ("SIGKILL"), if one did
    killed_after_term: bool = False  # still alive `grace` s after SIGTERM: SIGKILLed
    leftovers: int = 0  # background processes of its group still running when it exited (killed)
    cancelled: bool = False  # stopped because `cancel` was set


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid` (Linux /proc; [] elsewhere)."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def _exited(pid: int) -> bool:
    """Whether `pid` has exited, without reaping it (the zombie keeps its group id reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Reader:
    def __init__(self, proc: subprocess.Popen, capture: HeadTail) -> None:
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.capture = capture
        self.eof = False
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(proc.pid)
                self.selector.register(self.pidfd, selectors.EVENT_READ)
            except OSError:
                self.pidfd = None

    def pump(self, seconds: float) -> None:
        """Read what is available for up to `seconds`; returns early when the process exits
        (with a pidfd) or after 50 ms (without one: the caller polls)."""
        end = time.monotonic() + max(seconds, 0)
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            wait = remaining if self.pidfd is not None else min(remaining, 0.05)
            if self.eof and self.pidfd is None:
                time.sleep(wait)
                return
            for key, _ in self.selector.select(wait):
                if key.fd == self.pidfd:
                    return
                self._read()
            if self.pidfd is None:
                return

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                self.selector.unregister(self.fd)
                return
            self.capture.feed(chunk)

    def drain(self, seconds: float) -> None:
        """Read until end-of-file or `seconds` pass (a process outside the group may hold the pipe)."""
        end = time.monotonic() + seconds
        while not self.eof and time.monotonic() < end:
            for key, _ in self.selector.select(max(end - time.monotonic(), 0)):
                if key.fd == self.fd:
                    self._read()

    def close(self) -> None:
        self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)


def run_process(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    timeout: float,
    max_output_bytes: int = 16_000,
    env: Mapping[str, str] | None = None,
    grace: float = 2.0,
    leftover_grace: float = 0.5,
    cancel: threading.Event | None = None,
    cancel_grace: float = 0.5,
) -> ProcessResult:
    """Run `argv` to completion or `timeout` (see the module docstring); never leaves its process group behind."""
    capture = HeadTail(max_output_bytes)
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv), cwd=str(cwd), env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
    )
    pgid = proc.pid
    with _live_lock:
        _live.add(pgid)
    reader = _Reader(proc, capture)
    timed_out = killed_after_term = cancelled = False
    leftovers = 0
    try:
        deadline = start + timeout
        while not _exited(proc.pid) and time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            reader.pump(min(deadline - time.monotonic(), CANCEL_POLL_S) if cancel is not None else deadline - time.monotonic())
        if not _exited(proc.pid):
            timed_out = not cancelled
            _signal_group(pgid, signal.SIGTERM)
            kill_at = time.monotonic() + (cancel_grace if cancelled else grace)
            while not _exited(proc.pid) and time.monotonic() < kill_at:
                reader.pump(kill_at - time.monotonic())
            killed_after_term = not _exited(proc.pid)
            _signal_group(pgid, signal.SIGKILL)  # the leader is alive or an unreaped zombie: the group id is still ours
        else:
            leftovers = len(group_members(pgid))
            if leftovers or not os.path.isdir("/proc"):
                _signal_group(pgid, signal.SIGTERM)
                end = time.monotonic() + leftover_grace
                while group_members(pgid) and time.monotonic() < end:
                    time.sleep(0.02)
                _signal_group(pgid, signal.SIGKILL)
        reader.drain(1.0)
        proc.wait()
    finally:
        if proc.returncode is None:  # an exception above: never leave the group running
            _signal_group(pgid, signal.SIGKILL)
            proc.wait()
        with _live_lock:
            _live.discard(pgid)
        reader.close()
        proc.stdout.close()
    code = proc.returncode
    sig = None
    if code is not None and code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
    return ProcessResult(
        exit_code=code if code is not None and code >= 0 else None, output=capture.text(), total_bytes=capture.total,
        elided_bytes=capture.elided, timed_out=timed_out, duration_s=time.monotonic() - start, pid=proc.pid,
        signal=sig, killed_after_term=killed_after_term, leftovers=leftovers, cancelled=cancelled,
    )
