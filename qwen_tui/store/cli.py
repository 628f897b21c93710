"""`qwen-tui sessions ...`: list, search, show, export, rename and delete stored sessions.

Errors are one line on stderr ("qwen-tui: error: ..."), exit 2 for bad input (unknown id,
bad arguments) and 1 when the store fails; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from qwen_tui.store.db import StoreError
from qwen_tui.store.export import export_json, export_markdown, iso_utc
from qwen_tui.store.records import AmbiguousSession, SessionNotFound, SessionSummary
from qwen_tui.store.sessions import SessionStore

EPILOG = """\
ID is a session id, a unique start of one, or `last` (the latest session in this folder).
examples:
  qwen-tui sessions list --all
  qwen-tui sessions search "gated deltanet"
  qwen-tui sessions export last --format md -o chat.md
  qwen-tui sessions rm 01jdq3 --yes
"""


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and a second error line
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qwen-tui sessions", description=__doc__.splitlines()[0],
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="sessions, latest first (default: this folder)")
    listing.add_argument("--json", action="store_true", help="a JSON list of objects")
    where = listing.add_mutually_exclusive_group()
    where.add_argument("--workspace", metavar="DIR", help="sessions started in DIR")
    where.add_argument("--all", action="store_true", help="sessions from every folder")
    listing.add_argument("--limit", type=int, default=100, help="at most N (default 100)")
    search = commands.add_parser("search", help="full-text search in every session")
    search.add_argument("text", metavar="TEXT", nargs="+")
    search.add_argument("--json", action="store_true")
    search.add_argument("--limit", type=int, default=20)
    show = commands.add_parser("show", help="print a session as Markdown")
    show.add_argument("id", metavar="ID")
    export = commands.add_parser("export", help="write a session as Markdown or JSON")
    export.add_argument("id", metavar="ID")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")
    rename = commands.add_parser("rename", help="give a session a new title")
    rename.add_argument("id", metavar="ID")
    rename.add_argument("title", metavar="TITLE", nargs="+")
    remove = commands.add_parser("rm", help="delete a session and its messages")
    remove.add_argument("id", metavar="ID")
    remove.add_argument("--yes", action="store_true", help="do not ask")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        return _fail(f"{exc} (see: qwen-tui sessions --help)", 2)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        store = SessionStore()
    except StoreError as exc:
        return _fail(str(exc), 1)
    if store.problem:
        print(f"qwen-tui: warning: {store.problem}", file=sys.stderr)
    try:
        if args.command is None:  # plain `qwen-tui sessions` lists
            args = build_parser().parse_args(["list"])
        return COMMANDS[args.command](store, args)
    except (SessionNotFound, AmbiguousSession, UsageError) as exc:
        return _fail(str(exc), 2)
    except StoreError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `qwen-tui sessions list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        store.close()


def _fail(message: str, status: int) -> int:
    print(f"qwen-tui: error: {message}", file=sys.stderr)
    return status


def _resolve(store: SessionStore, reference: str) -> str:
    return store.resolve(reference, workspace=Path.cwd())


def _local(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _summary_json(summary: SessionSummary) -> dict:
    return {"id": summary.id, "title": summary.title, "workspace": summary.workspace,
            "model": summary.model, "created": iso_utc(summary.created),
            "updated": iso_utc(summary.updated), "message_count": summary.message_count}


def cmd_list(store: SessionStore, args: argparse.Namespace) -> int:
    workspace = None if args.all else Path(args.workspace or Path.cwd())
    if workspace is not None and not workspace.is_dir():
        raise UsageError(f"no such folder: {workspace}")
    sessions = store.list_sessions(workspace, limit=args.limit)
    if args.json:
        print(json.dumps([_summary_json(s) for s in sessions], ensure_ascii=False, indent=2))
        return 0
    if not sessions:
        others = len(store.list_sessions(None, limit=1))
        where = f" for {workspace.resolve()}" if workspace is not None else ""
        hint = " (qwen-tui sessions list --all shows the others)" if where and others else ""
        print(f"no sessions{where}{hint}", file=sys.stderr)
        return 0
    print(f"{'ID':<12}  {'UPDATED':<16}  {'MSGS':>4}  TITLE")
    for s in sessions:
        place = f"  [{s.workspace}]" if workspace is None else ""
        print(f"{s.id:<12}  {_local(s.updated):<16}  {s.message_count:>4}  "
              f"{s.title or '(untitled)'}{place}")
    return 0


def cmd_search(store: SessionStore, args: argparse.Namespace) -> int:
    hits = store.search(" ".join(args.text), limit=args.limit)
    if args.json:
        print(json.dumps([vars(hit) for hit in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no matches", file=sys.stderr)
        return 0
    for hit in hits:
        print(f"{hit.session_id}  {hit.session_title or '(untitled)'}  "
              f"#{hit.message_id} {hit.role}: {hit.snippet}")
    return 0


def cmd_show(store: SessionStore, args: argparse.Namespace) -> int:
    sys.stdout.write(export_markdown(store.load(_resolve(store, args.id))))
    return 0


def cmd_export(store: SessionStore, args: argparse.Namespace) -> int:
    record = store.load(_resolve(store, args.id))
    if args.format == "json":
        text = json.dumps(export_json(record), ensure_ascii=False, indent=2) + "\n"
    else:
        text = export_markdown(record)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}", 1)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_rename(store: SessionStore, args: argparse.Namespace) -> int:
    session_id = _resolve(store, args.id)
    store.rename(session_id, " ".join(args.title))
    print(f"renamed {session_id}", file=sys.stderr)
    return 0


def cmd_rm(store: SessionStore, args: argparse.Namespace) -> int:
    session_id = _resolve(store, args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("not deleting without confirmation: add --yes")
        record = store.load(session_id)
        title = record.session.title or "(untitled)"
        try:
            answer = input(f"Delete session {session_id} \"{title}\" "
                           f"({len(record.messages)} messages)? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("kept", file=sys.stderr)
            return 1
    store.delete(session_id)
    print(f"deleted {session_id}", file=sys.stderr)
    return 0


COMMANDS = {"list": cmd_list, "search": cmd_search, "show": cmd_show, "export": cmd_export,
            "rename": cmd_rename, "rm": cmd_rm}
