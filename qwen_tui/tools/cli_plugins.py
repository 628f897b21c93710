"""`qwen-tui plugins [--json] [--plugin PATH]`: the plugins found, where from, and their tools."""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen-tui plugins", description="List plugins, where they come from and their tools.")
    parser.add_argument("--json", action="store_true", help='print a JSON list of {"name", "source", "tools", "error", ...}')
    parser.add_argument("--plugin", action="append", default=[], metavar="PATH", help="also load this plugin file (repeatable)")
    return parser


def plugin_report(host, registry) -> list[dict]:
    report = []
    for info in host.plugins:
        tools = []
        for tool in info.tools:
            entry = {"name": tool.name, "description": tool.description, "parameters": tool.parameters, "read_only": tool.read_only}
            reason = registry.disabled_reason(info.name, tool.name)
            if reason:
                entry["error"] = reason
            tools.append(entry)
        report.append({
            "name": info.name,
            "source": info.source,
            "origin": info.origin,
            "tools": tools if info.active else [],
            "commands": [c.name for c in info.commands] if info.active else [],
            "error": info.error,
            "disabled": info.disabled,
            "problems": list(info.problems),
        })
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qwen_tui.plugins import PluginHost
    from qwen_tui.tools.registry import ToolRegistry

    host = PluginHost(plugin_paths=args.plugin)
    host.load_all()
    report = plugin_report(host, ToolRegistry(host))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not report:
        print(f"no plugins (put *.py files in {host.user_dir})")
        return 0
    for entry in report:
        state = "disabled in config" if entry["disabled"] else ("ERROR: " + entry["error"] if entry["error"] else "")
        print(f"{entry['name']}  [{entry['source']}]  {entry['origin']}  {state}".rstrip())
        for tool in entry["tools"]:
            flag = " (read-only)" if tool["read_only"] else ""
            note = f"  DISABLED: {tool['error']}" if tool.get("error") else ""
            print(f"    {tool['name']}{flag}  {tool['description']}{note}")
        for command in entry["commands"]:
            print(f"    /{command}")
        for problem in entry["problems"]:
            print(f"    problem: {problem}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
