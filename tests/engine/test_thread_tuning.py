"""Thread counts by measurement, fewer when other programs use the CPU (engine/thread_tuning.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qwen_tui import paths
from qwen_tui.engine import thread_tuning as tt
from qwen_tui.engine.cpu_load import CpuLoad, RecentLoad
from qwen_tui.engine.resources import usable_cpus

TWO_CORES = tt.Measurement(decode={1: 10.0, 2: 25.0}, batch={1: 40.0, 2: 78.0})  # idle: 2 threads 2.5x faster


def test_idle_machine_gets_the_fastest_measured_count():
    choice = tt.decide(TWO_CORES, usable=2, others=0.0)
    assert (choice.n_threads, choice.n_threads_batch) == (2, 2)
    assert choice.reason == "measured fastest here, 2.5x one thread's speed"


def test_a_busy_core_means_fewer_threads():
    choice = tt.decide(TWO_CORES, usable=2, others=1.0)  # another process spins on one core
    assert (choice.n_threads, choice.n_threads_batch) == (1, 1)
    assert choice.reason.startswith("busy machine: other programs use 1.0 of 2 CPUs")
    assert tt.decide(TWO_CORES, usable=2, others=0.2).n_threads == 2  # a little UI work is not a busy core
    assert tt.decide(TWO_CORES, usable=2, others=1.9).n_threads == 1  # never fewer than one


def test_fewer_threads_win_when_about_as_fast():
    m = tt.Measurement(decode={1: 10, 2: 19, 4: 30, 6: 31, 8: 29}, batch={1: 20, 2: 39, 4: 75, 6: 110, 8: 140})
    choice = tt.decide(m, usable=8, others=0.0)
    assert choice.n_threads == 4  # 6 is only 3% faster: leave the cores to others
    assert choice.n_threads_batch == 8  # prompt processing keeps scaling
    busy = tt.decide(m, usable=8, others=3.5)  # 4.5 cores free -> at most 4
    assert (busy.n_threads, busy.n_threads_batch) == (4, 4)


def test_candidates_reach_the_core_count():
    assert tt.candidates(1) == [1]
    assert tt.candidates(2) == [1, 2]
    assert tt.candidates(8) == [1, 2, 3, 4, 6, 8]
    assert tt.candidates(10) == [1, 2, 3, 4, 6, 8, 10]


class FakeCpu:
    """/proc/stat as a test controls it: `others` cores busy besides us, per second.

    Time passes only through `advance` (and a CpuLoad's waits, which are counted); RecentLoad's
    background look is played by `advance` every LOOK_PERIOD_S, as the worker's thread would.
    """

    def __init__(self) -> None:
        self.t = 0.0
        self.busy = 0.0
        self.mine = 0.0  # what our own process used: never "others"
        self.others = 0.0
        self.waits: list[float] = []
        self._recent: list[RecentLoad] = []

    def advance(self, seconds: float, mine: float = 0.0) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            step = min(0.05, end - self.t)
            self.t += step
            self.busy += (self.others + mine) * step
            self.mine += mine * step
            for recent in self._recent:
                if round(self.t / recent.period, 6).is_integer():
                    recent.tick()

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.advance(seconds)

    def read(self) -> tuple[float, float]:
        return self.busy, self.mine

    def load(self) -> CpuLoad:
        return CpuLoad(read=self.read, clock=lambda: self.t, sleep=self.wait)

    def recent(self) -> RecentLoad:
        recent = RecentLoad(read=self.read, clock=lambda: self.t, thread=False)
        self._recent.append(recent)
        return recent

    def tuner(self, m: tt.Measurement = TWO_CORES, usable: int = 2, applied: list | None = None) -> tt.ThreadTuner:
        set_threads = (lambda n, nb: applied.append((n, nb))) if applied is not None else (lambda n, nb: None)
        return tt.ThreadTuner(m, usable, set_threads, self.load(), self.recent())


def test_cpu_load_counts_what_others_used_since_the_last_look():
    cpu = FakeCpu()
    load = cpu.load()
    cpu.others = 1.0
    cpu.advance(2.0, mine=0.8)  # our own use (the model decoding) is not "others"
    assert load.others() == pytest.approx(1.0)
    cpu.others = 0.25
    cpu.advance(4.0)
    assert load.others() == pytest.approx(0.25)
    unknown = CpuLoad(read=lambda: None)
    assert unknown.others() is None  # no /proc: no adaptation


def test_recent_load_answers_for_the_last_half_second_without_waiting():
    cpu = FakeCpu()
    recent = cpu.recent()
    assert recent.others() is None  # no window yet: nothing to say
    cpu.others = 1.0
    cpu.advance(3.0, mine=1.0)
    cpu.others = 0.0
    cpu.advance(0.1)
    assert recent.others() == pytest.approx(0.25 / 0.35)  # since the newest look at least 0.25 s old
    cpu.advance(0.3)
    assert recent.others() == pytest.approx(0.0)  # what ran seconds ago is not the load now
    assert cpu.t == pytest.approx(3.4) and cpu.waits == []
    assert RecentLoad(read=lambda: None, thread=False).others() is None  # no /proc


def test_real_cpu_load_sees_a_spinning_process():
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable_cpus())]
    recent = RecentLoad(period=0.2)  # the worker's background look, on a real thread
    try:
        load = CpuLoad()
        others = load.others(min_window=0.6)
        now = recent.others()
    finally:
        recent.close()
        for p in spinners:
            p.kill()
            p.wait()
    assert others is not None and others >= usable_cpus() - 0.7
    assert now is not None and now >= usable_cpus() - 0.7


def test_measured_once_then_cached_and_adapted_per_generation(isolated_home):
    cpu = FakeCpu()
    measured: list[int] = []

    def step(n: int) -> tuple[float, float]:
        measured.append(n)
        cpu.advance(0.5)
        return TWO_CORES.decode[n], TWO_CORES.batch[n]

    applied: list[tuple[int, int]] = []
    key = tt.cache_key("model.gguf", 2, 2)
    load = cpu.load()  # made before the model loads: the load time is the first look
    cpu.advance(0.5, mine=1.0)
    tuner = tt.tune(key, usable=2, cores=2, step=step, set_threads=lambda n, nb: applied.append((n, nb)),
                    load=load, recent=cpu.recent())
    assert measured == [1, 2] and tuner.measured_now
    assert applied == [(2, 2)]
    assert cpu.waits == []  # loading took longer than a look needs
    cached = json.loads((paths.cache_dir() / "threads.json").read_text())[key]
    assert cached["decode"] == {"1": 10.0, "2": 25.0}

    load_again = cpu.load()
    cpu.advance(0.3, mine=1.0)  # loading the model again
    again = tt.tune(key, usable=2, cores=2, step=step, set_threads=lambda n, nb: None, load=load_again,
                    recent=cpu.recent())
    assert measured == [1, 2] and not again.measured_now  # from the cache

    # Another program starts spinning: the next generation uses one thread, and two again after.
    cpu.others = 1.0
    cpu.advance(1.0)
    assert tuner.before_generate().n_threads == 1  # the background looks saw it
    cpu.advance(1.0, mine=1.0)
    tuner.after_generate()  # the generation shared the CPU
    cpu.others = 0.0
    cpu.advance(2.0)
    assert tuner.before_generate().n_threads == 1  # idle now, but the last generation was not
    cpu.advance(1.0, mine=2.0)
    tuner.after_generate()
    assert tuner.before_generate().n_threads == 2
    assert applied == [(2, 2), (1, 1), (2, 2)]  # set only when the choice changes
    assert cpu.waits == []


def test_no_waiting_before_a_generation(isolated_home):
    """Choosing the threads costs no look-and-wait on the critical path (it used to cost 0.1 s)."""
    cpu = FakeCpu()
    tuner = cpu.tuner()
    for busy in (1.0, 0.0, 1.0):
        cpu.others = busy
        cpu.advance(0.6)
        before = cpu.t
        choice = tuner.before_generate()
        assert cpu.t == before and cpu.waits == []  # no time passed while choosing
        assert choice.n_threads == (1 if busy else 2)  # and it still saw the load just before
        cpu.others = 0.0
        cpu.advance(0.5, mine=2.0)
        tuner.after_generate()
    assert tuner.stats()["threads_look_ms"] >= 0


def test_no_background_looks_while_generating(isolated_home):
    cpu = FakeCpu()
    tuner = cpu.tuner()
    tuner.before_generate()
    looks = len(tuner.recent._looks)
    cpu.advance(3.0, mine=2.0)  # a long generation: the background thread stays quiet
    assert len(tuner.recent._looks) == looks
    tuner.after_generate()
    cpu.advance(0.25)
    assert len(tuner.recent._looks) > looks


def test_load_between_generations_does_not_count(isolated_home):
    """Another model's run between two of ours (as in a benchmark) is not a busy machine."""
    cpu = FakeCpu()
    tuner = cpu.tuner()
    assert tuner.before_generate().n_threads == 2
    cpu.advance(1.0)
    tuner.after_generate()
    cpu.others = 1.0
    cpu.advance(5.0)  # something else ran while we waited
    cpu.others = 0.0
    cpu.advance(0.5)  # ... and finished before our next request
    assert tuner.before_generate().n_threads == 2


def test_a_busy_machine_is_not_measured_until_idle(isolated_home):
    cpu = FakeCpu()
    calls: list[int] = []

    def step(n: int) -> tuple[float, float]:
        calls.append(n)
        cpu.advance(0.5)
        return TWO_CORES.decode[n], TWO_CORES.batch[n]

    key = tt.cache_key("busy.gguf", 2, 2)
    cpu.others = 1.0  # busy at load: measuring would time the other program
    first = tt.tune(key, 2, 2, step, lambda n, nb: None, load=cpu.load(), fallback=(2, 2), recent=cpu.recent())
    assert calls == [] and not first.measured_now
    assert first.choice.n_threads == 1 and first.choice.reason.startswith("busy machine")
    assert len(cpu.waits) == 2  # a fresh look to be sure it is still busy: only a busy load pays for it
    assert tt.load_cached(key) is None  # nothing cached: the next load tries again
    cpu.others = 0.0
    cpu.advance(1.0)
    choice = first.before_generate()  # idle again: the core-count plan
    assert (choice.n_threads, choice.reason) == (2, "not measured yet (busy at load), 2 by core count")
    redone = tt.tune(key, 2, 2, step, lambda n, nb: None, load=cpu.load(), fallback=(2, 2), recent=cpu.recent())
    assert redone.measured_now and calls == [1, 2]
    assert redone.choice.n_threads == 2 and tt.load_cached(key).decode == TWO_CORES.decode


def test_a_real_measurement_of_the_tiny_model(tiny_qwen35_path):
    from qwen_tui.engine.llama_backend import LlamaRunner
    from qwen_tui.engine.params import LoadParams, Sampling

    runner = LlamaRunner(LoadParams(str(tiny_qwen35_path), 512, 1, 1, use_extra_bufts=False))
    try:
        def answer() -> str:
            out: list[str] = []
            runner.generate(runner.tokenize("<|im_start|>user\nhi<|im_end|>\n"), max_tokens=6,
                            sampling=Sampling(temperature=0), emit_text=out.append, cancelled=lambda: False)
            return "".join(out)

        before = answer()
        step = tt.decode_timer(runner._decode, runner._reset, runner.set_threads, runner.tokenize("Hello")[0])
        m = tt.measure(step, tt.candidates(min(usable_cpus(), 2)), CpuLoad())
        assert 1 in m.decode and all(v > 0 for v in m.decode.values()) and all(v > 0 for v in m.batch.values())
        runner.set_threads(1, 1)
        assert answer() == before  # measuring left no trace in the model's memory
    finally:
        runner.close()


def test_the_engine_reports_its_thread_choice(tiny_qwen35_path, isolated_home):
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.engine.params import Sampling

    with LocalEngine(tiny_qwen35_path, n_ctx=512, tune_threads=True) as engine:
        info = engine.load()
        events = list(engine.generate(prompt="<|im_start|>user\nhi<|im_end|>\n", max_tokens=4,
                                      sampling=Sampling(temperature=0)))
        threads = engine.info.threads
    assert 1 <= info.threads.n_threads <= usable_cpus()
    # Idle at load: measured (and cached); busy: the core-count plan until an idle load measures.
    assert info.threads.reason.startswith(("measured", "busy machine", "not measured yet"))
    cached = json.loads((paths.cache_dir() / "threads.json").read_text()) if (paths.cache_dir() / "threads.json").exists() else {}
    assert info.threads.reason.startswith("not measured") or any(str(tiny_qwen35_path) in k for k in cached) \
        or info.threads.reason.startswith("busy machine")
    assert f"{threads.n_threads}/{threads.n_threads_batch} threads" in engine.info.short_settings
    assert events[-1].extra["n_threads"] == threads.n_threads
    # Choosing happened on the critical path without the old 0.1 s look at /proc/stat.
    assert 0 <= events[-1].extra["threads_look_ms"] < 100


def test_the_apps_own_work_before_a_request_does_not_count_as_a_busy_machine(tmp_path):
    # The worker's look before a generation: the app that started it (here: this test process)
    # burning CPU right before it asks is the request being prepared, not a competing program.
    import time

    script = (
        "import sys, time\n"
        "from qwen_tui.engine.cpu_load import RecentLoad, _read_cpu_seconds\n"
        "recent = RecentLoad(thread=False)\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"  # the parent burns CPU until it writes this line
        "with_app = recent.others()\n"
        "print(with_app)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # the parent (the "app") is busy on one core
        sum(i * i for i in range(2000))
    child.stdin.write("go\n")
    child.stdin.flush()
    seen = float(child.stdout.readline())
    child.wait(timeout=10)
    assert seen < 0.5, f"the app's own 100% of a core was counted as other programs: {seen:.2f} cores"
