"""`qwen-tui models ...`: list, pull, rm, info, recommend and add local GGUF models.

Errors are one line on stderr ("qwen-tui: error: ..."), exit 2 for bad input (unknown name,
bad spec, broken file), 1 when a download or the disk fails; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
SPEC is a preset (qwen3.5:0.8b, qwen3.5:2b, qwen3.5:4b, qwen3.5:9b, optionally :QUANT, e.g.
qwen3.5:4b:Q8_0) or a Hub repository OWNER/REPO[:QUANT] (default quant Q4_K_M). HF_ENDPOINT and
HF_TOKEN are honoured. Models go to the data dir's models/ folder, or [models] dir in config.toml.
examples:
  qwen-tui models recommend
  qwen-tui models pull qwen3.5:4b
  qwen-tui models pull unsloth/Qwen3.5-9B-GGUF:Q5_K_M
  qwen-tui models add ~/Downloads/Qwen3.5-2B-Q8_0.gguf
  qwen-tui models info qwen3.5:4b
  qwen-tui --model qwen3.5:4b
"""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qwen-tui models", description=__doc__.splitlines()[0], epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="local models (pulled, added, or in the models folder)")
    listing.add_argument("--json", action="store_true")
    pull = commands.add_parser("pull", help="download a model (and its vision projector) from the Hub")
    pull.add_argument("spec", metavar="SPEC")
    pull.add_argument("--no-vision", action="store_true", help="don't fetch the mmproj (vision) file")
    pull.add_argument("--revision", default="main", help="branch, tag or commit (default main)")
    pull.add_argument("--quiet", action="store_true", help="no progress bar")
    pull.add_argument("--json", action="store_true", help="print the registered model as JSON")
    remove = commands.add_parser("rm", help="forget a model; delete the files qwen-tui downloaded")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--keep-files", action="store_true", help="only forget it")
    remove.add_argument("--delete-files", action="store_true", help="also delete a file that was added by path")
    remove.add_argument("--json", action="store_true")
    info = commands.add_parser("info", help="architecture, size, quant, context, vision: from the GGUF header")
    info.add_argument("target", metavar="PATH|NAME")
    info.add_argument("--json", action="store_true")
    rec = commands.add_parser("recommend", help="the Qwen 3.5 size and quant for this machine, and why")
    rec.add_argument("--ctx", type=int, default=None, metavar="N", help="plan for N tokens of context (default 32768)")
    rec.add_argument("--ram", type=float, metavar="GIB", help="pretend the machine has this much RAM")
    rec.add_argument("--vram", type=float, metavar="GIB", help="pretend it has a GPU with this much VRAM (0: none)")
    rec.add_argument("--json", action="store_true")
    add = commands.add_parser("add", help="register a GGUF that lives elsewhere (not copied)")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--name", help="name to use (default: the file name)")
    add.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        return _fail(f"{exc} (see: qwen-tui models --help)", 2)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if not args.command:
        build_parser().print_help()
        return 0
    from qwen_tui.engine.errors import ModelFileError
    from qwen_tui.models.catalog import SpecError
    from qwen_tui.models.pull import PullError
    from qwen_tui.models.store import ModelNotFound

    try:
        return COMMANDS[args.command](args)
    except (ModelNotFound, SpecError, ModelFileError, UsageError) as exc:
        return _fail(str(exc), 2)
    except PullError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        print("\nqwen-tui: interrupted (run the same pull again to resume)", file=sys.stderr)
        return 130
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1)


def _fail(message: str, code: int) -> int:
    print(f"qwen-tui: error: {message}", file=sys.stderr)
    return code


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def cmd_list(args) -> int:
    from qwen_tui.models.store import ModelStore

    store = ModelStore()
    models = store.list()
    if args.json:
        print(json.dumps([m.to_json() for m in models], indent=2))
        return 0
    if not models:
        print(f"no models yet in {store.folder}\n  qwen-tui models recommend     which Qwen 3.5 suits this machine"
              "\n  qwen-tui models pull qwen3.5:4b")
        return 0
    rows = [(m.name, m.quant or "", _size(m.to_json()["size"]) if m.exists else "missing",
             "vision" if m.vision else "", m.source, m.path) for m in models]
    widths = [max(len(r[i]) for r in rows + [("NAME", "QUANT", "SIZE", "", "SOURCE", "")]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(("NAME", "QUANT", "SIZE", "", "SOURCE"), widths)) + "  PATH")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    return 0


def progress_bar():
    """tqdm on stderr, always shown (also when stderr is not a terminal: logs and tests see it)."""
    from tqdm import tqdm

    class Bar(tqdm):
        def __init__(self, *a, **kw):
            kw.setdefault("file", sys.stderr)
            kw.setdefault("mininterval", 0.5)
            kw.pop("name", None)
            super().__init__(*a, **kw)

    return Bar


def cmd_pull(args) -> int:
    from qwen_tui.models.pull import pull

    def say(msg: str) -> None:
        print(msg, file=sys.stderr)

    model = pull(args.spec, vision=not args.no_vision, revision=args.revision,
                 progress=None if args.quiet else progress_bar(), say=say)
    if args.json:
        print(json.dumps(model.to_json(), indent=2))
    else:
        print(f"pulled {model.name}: {model.path}")
        if model.mmproj:
            print(f"vision projector: {model.mmproj}")
        print(f"run it: qwen-tui --model {model.name}")
    return 0


def cmd_rm(args) -> int:
    from qwen_tui.models.store import ModelStore

    if args.keep_files and args.delete_files:
        raise UsageError("--keep-files and --delete-files contradict each other")
    delete = False if args.keep_files else (True if args.delete_files else None)
    model, deleted = ModelStore().remove(args.name, delete_files=delete)
    if args.json:
        print(json.dumps({"removed": model.name, "deleted_files": deleted}))
    else:
        print(f"removed {model.name}" + (f"; deleted {', '.join(deleted)}" if deleted else "; its files stay"))
    return 0


def cmd_info(args) -> int:
    from qwen_tui.models.info import format_facts, model_facts
    from qwen_tui.models.store import ModelStore

    store = ModelStore()
    path = store.resolve(args.target)
    mmproj = None
    for m in store.list():
        if m.path == str(path) and m.mmproj:
            mmproj = m.mmproj
    facts = model_facts(path, mmproj)
    print(json.dumps(facts, indent=2) if args.json else format_facts(facts))
    return 0


def cmd_recommend(args) -> int:
    from qwen_tui.models.fit import DEFAULT_FIT_CONTEXT, GiB, Gpu, Hardware, detect, recommend

    hw = detect()
    if args.ram is not None or args.vram is not None:
        if (args.ram is not None and args.ram <= 0) or (args.vram is not None and args.vram < 0):
            raise UsageError("--ram must be > 0 and --vram >= 0 (GiB)")
        ram = int(args.ram * GiB) if args.ram is not None else hw.ram_total
        gpus = hw.gpus if args.vram is None else ((Gpu("GPU (given)", int(args.vram * GiB)),) if args.vram else ())
        hw = Hardware(ram, ram, hw.cpus, gpus, ("hardware given on the command line",))
    if args.ctx is not None and args.ctx < 512:
        raise UsageError("--ctx must be at least 512 tokens")
    rec = recommend(hw, args.ctx or DEFAULT_FIT_CONTEXT)
    if args.json:
        print(json.dumps(rec.to_json(), indent=2))
        return 0 if rec.choice else 1
    if rec.choice is None:
        print("no Qwen 3.5 size fits this machine")
    else:
        c = rec.choice
        print(f"recommended: Qwen 3.5 {c.preset.label} {c.quant} ({c.preset.name}, about {_size(c.weights)})")
    print("why:")
    for reason in rec.reasons:
        print(f"  - {reason}")
    for note in hw.notes:
        print(f"  - note: {note}")
    if rec.choice:
        if rec.alternatives:
            print("also fits: " + ", ".join(f"{a.quant} ({_size(a.weights)})" for a in rec.alternatives))
        print(f"get it:  qwen-tui models pull {rec.choice.pull_spec}")
    return 0 if rec.choice else 1


def cmd_add(args) -> int:
    from qwen_tui.models.store import ModelStore

    model = ModelStore().add_path(args.path, args.name)
    if args.json:
        print(json.dumps(model.to_json(), indent=2))
    else:
        print(f"added {model.name}: {model.path}" + (" (vision)" if model.vision else ""))
    return 0


COMMANDS = {"list": cmd_list, "pull": cmd_pull, "rm": cmd_rm, "info": cmd_info, "recommend": cmd_recommend,
            "add": cmd_add}
