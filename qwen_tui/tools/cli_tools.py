"""`qwen-tui tools list|call`: see the tools, or call one exactly as the agent would.

    qwen-tui tools list [--json] [--plugin PATH]
    qwen-tui tools call NAME 'JSON-ARGS' [--workspace DIR] [--allow NAME | --yolo] [--json]
                        [--timeout S] [--max-output N] [--plugin PATH]

`call` uses the agent's path (`runner.execute_call`): same argument validation, approval
policy in non-interactive mode (anything that would ask is refused unless `--allow NAME` or
`--yolo`), timeout and output cap. Exit codes: 0 ok, 1 the tool failed (invalid arguments,
exception, timeout), 2 bad usage (bad JSON, unknown tool), 3 refused by the approval policy.
On failure the reason is one line on stderr (with `--json` the result also goes to stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen-tui tools", description="List the tools, or call one as the agent would.")
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list the tools the model can call")
    listing.add_argument("--json", action="store_true", help="print the OpenAI-style tool schemas")
    listing.add_argument("--plugin", action="append", default=[], metavar="PATH", help="also load this plugin file")
    call = sub.add_parser("call", help="call one tool and print its result")
    call.add_argument("name", help="tool name")
    call.add_argument("arguments", nargs="?", default="{}", help="arguments as a JSON object (default {})")
    call.add_argument("--workspace", default=".", metavar="DIR", help="workspace the tool works in (default: .)")
    allow = call.add_mutually_exclusive_group()
    allow.add_argument("--allow", action="append", default=[], metavar="NAME", help="allow this tool without asking (repeatable)")
    allow.add_argument("--yolo", action="store_true", help="allow every tool call")
    call.add_argument("--json", action="store_true", help="print the structured result")
    call.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds before giving up (default 30)")
    call.add_argument("--max-output", type=int, default=20_000, metavar="N", help="cap the output at N characters")
    call.add_argument("--plugin", action="append", default=[], metavar="PATH", help="also load this plugin file")
    return parser


def _fail(message: str, code: int) -> int:
    print("qwen-tui tools: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def _make_call(name: str, arguments: dict):
    try:
        from qwen_tui.agent.parser import ToolCall

        return ToolCall(name=name, arguments=arguments, raw="")
    except Exception:  # pragma: no cover - fall back to the duck type the hooks document
        from types import SimpleNamespace

        return SimpleNamespace(name=name, arguments=arguments, raw="")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qwen_tui.plugins import PluginHost
    from qwen_tui.tools.registry import ToolRegistry

    host = PluginHost(plugin_paths=args.plugin)
    host.load_all()
    registry = ToolRegistry(host)
    if args.action == "list":
        if args.json:
            print(json.dumps(registry.openai_schemas(), indent=2))
        else:
            for tool in registry:
                flag = " (read-only)" if tool.read_only else ""
                print(f"{tool.name}{flag}  [{tool.plugin}]  {tool.description}")
        for problem in host.problems() + registry.problems:
            print("warning: " + problem, file=sys.stderr)
        return 0

    try:
        arguments = json.loads(args.arguments)
    except ValueError as exc:
        return _fail(f"arguments must be a JSON object: {exc}", 2)
    if not isinstance(arguments, dict):
        return _fail(f"arguments must be a JSON object, not {type(arguments).__name__}", 2)
    if registry.get(args.name) is None:
        hint = "; ".join(host.problems() + registry.problems)
        known = ", ".join(registry.names()) or "none"
        return _fail(f"unknown tool {args.name!r} (tools: {known})" + (f"; plugin problems: {hint}" if hint else ""), 2)
    workspace = Path(args.workspace)
    if not workspace.is_dir():
        return _fail(f"workspace {workspace} is not a folder", 2)

    from qwen_tui.tools.approval import ApprovalPolicy
    from qwen_tui.tools.runner import execute_call
    from qwen_tui.tools.tool import ToolContext

    policy = ApprovalPolicy(workspace, yolo=args.yolo, allow=args.allow, interactive=False, host=host)
    call = _make_call(args.name, arguments)
    result = execute_call(call, registry=registry, policy=policy, host=host, context=ToolContext(workspace=policy.workspace),
                          timeout=args.timeout, max_output_chars=args.max_output)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif result.ok:
        sys.stdout.write(result.content + ("" if result.content.endswith("\n") or not result.content else "\n"))
    if result.ok:
        return 0
    code = _fail(result.error or "failed", 3 if result.denied else 1)
    sys.stdout.flush()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
