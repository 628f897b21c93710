"""`python -m qwen_tui.testing prepare`: fetch and build the models the tests and benchmarks use."""

import sys

from qwen_tui.testing.fixtures import prepare

if sys.argv[1:] != ["prepare"]:
    print("usage: python -m qwen_tui.testing prepare", file=sys.stderr)
    raise SystemExit(2)
prepare()
