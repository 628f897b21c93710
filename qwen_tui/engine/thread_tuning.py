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
up to the physical cores), within a time budget. Before every generation it takes how much
CPU the *other* processes used (from /proc/stat minus its own time, steal included: on a VM
that is another guest using our core) over the last quarter to half second and during the
previous generation (the UI's own rendering counts as other), and uses the fastest measured
count that fits in the cores left, preferring fewer threads when within 5% of the fastest.
That costs no waiting: a background thread of the worker looks at /proc/stat every 0.25 s while
no generation runs (engine/cpu_load.py), so the figure for "just now" is ready when a request comes.

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
from qwen_tui.engine.cpu_load import CpuLoad, RecentLoad
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
    load: CpuLoad = field(default_factory=CpuLoad)  # what others use while we generate
    recent: RecentLoad = field(default_factory=RecentLoad)  # what they used just before
    choice: ThreadChoice | None = None
    others: float = 0.0
    idle: float = 0.0  # what others used just before the last generation (or at load)
    during: float = 0.0  # what others used while we last generated (the UI drawing our stream, too)
    measured_now: bool = False
    look_ms: float = 0.0  # what choosing cost before the last generation

    def apply(self, others: float) -> ThreadChoice:
        """Set the thread counts that fit when other processes use `others` cores."""
        self.others = others
        choice = decide(self.measurement, self.usable, others)
        if self.choice is None or (choice.n_threads, choice.n_threads_batch) != (
                self.choice.n_threads, self.choice.n_threads_batch):
            self.set_threads(choice.n_threads, choice.n_threads_batch)
        self.choice = choice
        return choice

    def before_generate(self) -> ThreadChoice:
        """Apply the counts that fit the last half second's load and the last generation's.

        No waiting: the last half second comes from the background looks (RecentLoad).
        """
        t0 = time.perf_counter()
        now = self.recent.others()
        if now is not None:
            self.idle = now
        self.recent.pause()
        self.load.mark()
        choice = self.apply(max(self.idle, self.during))
        self.look_ms = (time.perf_counter() - t0) * 1000
        return choice

    def after_generate(self) -> None:
        """What others used while we generated (the UI's rendering included) guides the next one."""
        during = self.load.others(0.0)
        if during is not None:
            self.during = during
        self.recent.resume()

    def close(self) -> None:
        self.recent.close()

    def stats(self) -> dict:
        c = self.choice
        return {} if c is None else {"n_threads": c.n_threads, "n_threads_batch": c.n_threads_batch,
                                     "threads_reason": c.reason, "cpu_used_by_others": round(self.others, 2),
                                     "threads_look_ms": round(self.look_ms, 3)}


def tune(key: str, usable: int, cores: int, step: Callable[[int], tuple[float, float]],
         set_threads: Callable[[int, int], None], load: CpuLoad | None = None,
         fallback: tuple[int, int] = (1, 1), recent: RecentLoad | None = None) -> ThreadTuner:
    """Use the cached measurement for this machine and model, or measure (and cache) it now.

    Only an idle machine is measured: with other programs busy, a measurement would time them.
    Until then a cached busy-time result, or else `fallback` (the core-count plan), is used.
    `load` should have been made before the model was loaded: what others used meanwhile is
    the first look (a 0.1 s one only where that window was shorter, or busy: to be sure).
    """
    load = load or CpuLoad()
    cached = load_cached(key)
    now = load.others(0.1) or 0.0
    if now > BUSY_AT_MEASURE:  # busy while we loaded: is it still?
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
    tuner = ThreadTuner(m, usable, set_threads, load, recent or RecentLoad(), idle=now, measured_now=fresh)
    tuner.apply(now)
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


def attach(runner, since: CpuLoad | None = None) -> ThreadTuner:
    """Tune a LlamaRunner (duck-typed: _decode, _reset, set_threads, tokenize, params).

    `since`: a CpuLoad made before the model was loaded (its window is the first look).
    """
    from qwen_tui.engine.resources import physical_cores, usable_cpus

    usable = usable_cpus()
    cores = physical_cores(usable)
    p = runner.params
    key = cache_key(p.path, usable, cores, p.n_gpu_layers)
    token = (runner.tokenize("Hello") or [0])[0]
    return tune(key, usable, cores, decode_timer(runner._decode, runner._reset, runner.set_threads, token),
                runner.set_threads, load=since, fallback=(p.n_threads, p.n_threads_batch))
