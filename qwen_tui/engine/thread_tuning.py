"""Pick llama.cpp's thread counts by measuring, and fewer when other programs want the CPU.

Why measure: the best decode thread count depends on the CPU's memory bandwidth, its core
types and the model, not on the core count alone (decode is memory-bound: past a few threads
more only add synchronisation). Why adapt: llama.cpp's threads spin at every barrier, so one
that has to share its core with another busy process stalls all the others: on a 2-core box
2 threads decoded 2.5x faster than 1 while idle but 5x slower than 1 while another process
spun on one core.

So, at the first load of a model on a machine (the result is cached in the user cache dir,
keyed by CPU model, usable CPUs, physical cores and the model file), the worker times a few
single-token decodes and one small batch at each candidate thread count (1, 2, 3, 4, 6, 8 ...
up to the physical cores), within a time budget. Before every generation it reads how much
CPU the *other* processes used (from /proc/stat minus its own time, steal included: on a VM
that is another guest using our core) since the last look, including during the previous
generation (the UI's own rendering counts as other), and uses the fastest measured count that
fits in the cores left, preferring fewer threads when within 5% of the fastest.

Only an idle machine is measured (busy, we would time the other programs); until then the
core-count plan is used, capped by the load like a measured result.
This module does not touch llama.cpp: the runner hands in `measure` and `set_threads`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qwen_tui import paths
from qwen_tui.engine.machine import cpu_model

MARGIN = 0.05  # fewer threads win when within 5% of the fastest
BUSY_AT_MEASURE = 0.5  # cores used by others while measuring above which the result is provisional
SLACK = 0.3  # a core counts as free when others use at most 70% of it
MEASURE_BUDGET_S = 3.0  # stop trying more thread counts after this long
STEP_BUDGET_S = 0.15  # per thread count: single-token decodes for about this long (3 to 8 of them)
CACHE_VERSION = 1


@dataclass
class Measurement:
    decode: dict[int, float]  # threads -> decoded tokens per second
    batch: dict[int, float]  # threads -> prompt tokens per second
    busy: float = 0.0  # cores other processes used while we measured
    when: str = ""
    measured: bool = True  # False: the machine was busy at load; counts from the core count until idle

    def to_json(self) -> dict:
        return {"decode": {str(k): v for k, v in self.decode.items()},
                "batch": {str(k): v for k, v in self.batch.items()}, "busy": self.busy, "when": self.when}

    @classmethod
    def from_json(cls, data: dict) -> Measurement:
        return cls({int(k): float(v) for k, v in data["decode"].items()},
                   {int(k): float(v) for k, v in data["batch"].items()},
                   float(data.get("busy", 0.0)), str(data.get("when", "")))


@dataclass(frozen=True)
class ThreadChoice:
    n_threads: int
    n_threads_batch: int
    reason: str


def candidates(cores: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, 32 ... below `cores`, and `cores` itself."""
    steps = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    return sorted({n for n in steps if n < cores} | {max(cores, 1)})


def _pick(speeds: dict[int, float], limit: int) -> int:
    fitting = {n: v for n, v in speeds.items() if n <= limit}
    if not fitting:
        return 1
    best = max(fitting.values())
    return min(n for n, v in fitting.items() if v >= best * (1 - MARGIN))


def decide(m: Measurement, usable: int, others: float) -> ThreadChoice:
    """The fastest measured thread counts that fit in the cores other processes leave free."""
    limit = max(1, int(usable - others + SLACK))
    if not m.measured:
        n, nb = min(max(m.decode), limit), min(max(m.batch or m.decode), limit)
        why = f"not measured yet (busy at load), {n} by core count"
        if limit < usable:
            why = f"busy machine: other programs use {others:.1f} of {usable} CPUs, so at most {limit}"
        return ThreadChoice(n, nb, why)
    n = _pick(m.decode, limit)
    nb = _pick(m.batch, limit) if m.batch else n
    one = m.decode.get(1)
    speed = f", {m.decode[n] / one:.1f}x one thread's speed" if one and n != 1 and n in m.decode else ""
    if limit < usable:
        why = f"busy machine: other programs use {others:.1f} of {usable} CPUs, so at most {limit}"
    else:
        why = f"measured fastest here{speed}"
    return ThreadChoice(n, nb, why)


# -- what other processes use -------------------------------------------------------------------


def _read_cpu_seconds() -> tuple[float, float] | None:
    """(busy seconds of all CPUs incl. steal, this process's CPU seconds), or None off Linux."""
    try:
        hz = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        busy = (user + nice + system + irq + softirq + steal) / hz
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        mine = (int(own[11]) + int(own[12])) / hz  # utime, stime of all our threads
        return busy, mine
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class CpuLoad:
    """Cores used by other processes between two looks (None where /proc is not available)."""

    def __init__(self, read: Callable[[], tuple[float, float] | None] = _read_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._read, self._clock, self._sleep = read, clock, sleep
        self._last = (clock(), read())

    def mark(self) -> None:
        """Start a new window now."""
        self._last = (self._clock(), self._read())

    def others(self, min_window: float = 0.1) -> float | None:
        t0, first = self._last
        if first is None:
            return None
        if self._clock() - t0 < min_window:
            self._sleep(min_window - (self._clock() - t0))
        now, second = self._clock(), self._read()
        self._last = (now, second)
        if second is None or now <= t0:
            return None
        return max(0.0, ((second[0] - first[0]) - (second[1] - first[1])) / (now - t0))


# -- cache --------------------------------------------------------------------------------------


def cache_key(model_path: str, usable: int, cores: int, gpu_layers: int = 0) -> str:
    try:
        st = os.stat(model_path)
        file_id = f"{os.path.abspath(model_path)}:{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        file_id = model_path
    return f"v{CACHE_VERSION}|{cpu_model()}|{usable} cpus|{cores} cores|gpu {gpu_layers}|{file_id}"


def _cache_file() -> Path:
    return paths.cache_dir() / "threads.json"


def load_cached(key: str) -> Measurement | None:
    try:
        return Measurement.from_json(json.loads(_cache_file().read_text())[key])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save_cached(key: str, m: Measurement) -> None:
    path = _cache_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[key] = m.to_json()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass


# -- measuring and adapting ------------------------------------------------------------------------


def measure(step: Callable[[int], tuple[float, float]], counts: list[int], load: CpuLoad,
            budget_s: float = MEASURE_BUDGET_S) -> Measurement:
    """Time `step(n)` -> (decode tok/s, batch tok/s) for each thread count, within the budget."""
    decode: dict[int, float] = {}
    batch: dict[int, float] = {}
    load.others(0.0)
    start = time.monotonic()
    for n in counts:
        decode[n], batch[n] = step(n)
        if time.monotonic() - start > budget_s:
            break
        if len(decode) >= 2 and decode[n] < 0.8 * max(decode.values()):
            break  # past the peak: more threads only fight over memory bandwidth
    busy = load.others(0.0) or 0.0
    return Measurement(decode, batch, busy, time.strftime("%Y-%m-%d %H:%M:%S"))


@dataclass
class ThreadTuner:
    """Holds the measurement; before each generation, applies the counts that fit the load now."""

    measurement: Measurement
    usable: int
    set_threads: Callable[[int, int], None]
    load: CpuLoad = field(default_factory=CpuLoad)
    choice: ThreadChoice | None = None
    others: float = 0.0
    during: float = 0.0  # what others used while we last generated (the UI drawing our stream, too)
    measured_now: bool = False

    def before_generate(self) -> ThreadChoice:
        """Look at the load for 0.1 s and at the last generation's; apply the counts that fit."""
        self.load.mark()
        now = self.load.others(0.1)
        self.others = max(now if now is not None else 0.0, self.during)
        choice = decide(self.measurement, self.usable, self.others)
        if self.choice is None or (choice.n_threads, choice.n_threads_batch) != (
                self.choice.n_threads, self.choice.n_threads_batch):
            self.set_threads(choice.n_threads, choice.n_threads_batch)
        self.choice = choice
        return choice

    def after_generate(self) -> None:
        """What others used while we generated (the UI's rendering included) guides the next one."""
        during = self.load.others(0.0)
        if during is not None:
            self.during = during

    def stats(self) -> dict:
        c = self.choice
        return {} if c is None else {"n_threads": c.n_threads, "n_threads_batch": c.n_threads_batch,
                                     "threads_reason": c.reason, "cpu_used_by_others": round(self.others, 2)}


def tune(key: str, usable: int, cores: int, step: Callable[[int], tuple[float, float]],
         set_threads: Callable[[int, int], None], load: CpuLoad | None = None,
         fallback: tuple[int, int] = (1, 1)) -> ThreadTuner:
    """Use the cached measurement for this machine and model, or measure (and cache) it now.

    Only an idle machine is measured: with other programs busy, a measurement would time them.
    Until then a cached busy-time result, or else `fallback` (the core-count plan), is used.
    """
    load = load or CpuLoad()
    cached = load_cached(key)
    load.mark()
    now = load.others(0.1) or 0.0
    busy_now = now > BUSY_AT_MEASURE
    fresh = not busy_now and (cached is None or cached.busy > BUSY_AT_MEASURE)
    if fresh:
        m = measure(step, candidates(cores), load)
        save_cached(key, m)
    elif cached is not None:
        m = cached
    else:
        m = Measurement({fallback[0]: 1.0}, {fallback[1]: 1.0}, now, time.strftime("%Y-%m-%d %H:%M:%S"), measured=False)
    tuner = ThreadTuner(m, usable, set_threads, load, measured_now=fresh)
    tuner.before_generate()
    return tuner


def decode_timer(decode: Callable[[list[int], int], int], reset: Callable[[], None],
                 set_threads: Callable[[int, int], None], token: int, batch: int = 16):
    """A `step(n)` for measure(): single-token decodes, then one `batch`-token prompt chunk."""
    clock = time.perf_counter

    def run(tokens: list[int], pos: int) -> float:
        t0 = clock()
        if decode(tokens, pos) != 0:
            raise RuntimeError("llama_decode failed while measuring threads")
        return clock() - t0

    def step(n: int) -> tuple[float, float]:
        set_threads(n, n)
        reset()
        try:
            run([token], 0)  # warm-up: the first decode allocates and pages weights in
            times: list[float] = []
            deadline = clock() + STEP_BUDGET_S
            while len(times) < 8 and (len(times) < 3 or clock() < deadline):
                times.append(run([token], 1 + len(times)))
            seconds = run([token] * batch, 1 + len(times))
        finally:
            reset()
        return len(times) / sum(times), batch / seconds

    return step


def attach(runner) -> ThreadTuner:
    """Tune a LlamaRunner (duck-typed: _decode, _reset, set_threads, tokenize, params)."""
    from qwen_tui.engine.resources import physical_cores, usable_cpus

    usable = usable_cpus()
    cores = physical_cores(usable)
    p = runner.params
    key = cache_key(p.path, usable, cores, p.n_gpu_layers)
    token = (runner.tokenize("Hello") or [0])[0]
    return tune(key, usable, cores, decode_timer(runner._decode, runner._reset, runner.set_threads, token),
                runner.set_threads, fallback=(p.n_threads, p.n_threads_batch))
