"""run_command's output capture vs `subprocess.run(capture_output=True)`, in one run.

The same flood (`head -c 100M /dev/urandom | base64`, ~135 MB of text) through
`qwen_tui.tools.process.run_process` (head + tail kept, bounded) and through a plain
`subprocess.run(..., capture_output=True)` then capped afterwards (what a naive tool does). Each
runs in a fresh Python process; we print the growth of its peak RSS (VmHWM) and wall time.

    flock /tmp/qwen-cpu.lock python benchmarks/shell_output.py [--mb 100]

The last line reads `peak RSS growth ratio naive/ours: X` (higher is better for ours).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent('''
    import json, subprocess, sys, time
    from qwen_tui.tools.process import run_process

    def peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    command = ["bash", "-c", f"head -c {sys.argv[2]}M /dev/urandom | base64"]
    run_process(["true"], cwd=".", timeout=5)  # warm-up
    before, start = peak_kb(), time.monotonic()
    if sys.argv[1] == "ours":
        result = run_process(command, cwd=".", timeout=300, max_output_bytes=16_000)
        total, kept = result.total_bytes, len(result.output)
    else:
        done = subprocess.run(command, capture_output=True, timeout=300)
        data = done.stdout.decode("utf-8", errors="replace")
        total, kept = len(done.stdout), len(data[:8000] + data[-8000:])
    print(json.dumps({"growth_kb": peak_kb() - before, "seconds": time.monotonic() - start, "total": total, "kept": kept}))
''')


def measure(kind: str, mb: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, kind, str(mb)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode:
        raise SystemExit(f"{kind} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="megabytes of random data to base64 (default 100)")
    args = parser.parse_args()
    ours, naive = measure("ours", args.mb), measure("naive", args.mb)
    for name, r in (("ours", ours), ("naive", naive)):
        print(f"{name:5}  output {r['total'] / 2**20:7.1f} MB  kept {r['kept']:6d} chars  peak RSS growth {r['growth_kb']:7d} KB  {r['seconds']:.2f} s")
    print(f"wall time ratio naive/ours: {naive['seconds'] / ours['seconds']:.2f}")
    print(f"peak RSS growth ratio naive/ours: {naive['growth_kb'] / max(ours['growth_kb'], 4):.0f} (ours floored at one 4 KB page)")


if __name__ == "__main__":
    main()
