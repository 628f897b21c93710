"""First-party plugin: `run_command`, a shell command in the workspace, with the user's approval.

Each call asks the user unless a workspace command rule allows that exact command prefix
(``/allow-command git status`` in the app; chained or obfuscated commands never match one).
The command runs as its own process group with stdin empty, a timeout that stops the whole
group (so does the user's Esc, through `ctx.cancelled`), capped output and an environment without secrets (see `qwen_tui.tools.process`).
Written exactly as a user's plugin would be.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from qwen_tui import hookimpl, tool
from qwen_tui.tools import ToolContext
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.command_rules import matching_rule, simple_words
from qwen_tui.tools.process import run_process, scrub_env

DEFAULTS = {"default_timeout": 60, "max_timeout": 600, "max_output_bytes": 16_000, "scrub_env": [], "keep_env": [], "shell": ""}
GRACE_S = 2.0


def settings() -> tuple[dict, list[str]]:
    """`[tools.shell]` with defaults; problems for values that are not usable."""
    from qwen_tui.config import load_table

    table, problems = load_table("tools.shell")
    out = dict(DEFAULTS)
    for key in ("default_timeout", "max_timeout", "max_output_bytes"):
        value = table.get(key, DEFAULTS[key])
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            out[key] = value
        else:
            problems.append(f"[tools.shell] {key} must be a positive number; using {DEFAULTS[key]}")
    for key in ("scrub_env", "keep_env"):
        value = table.get(key, [])
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = value
        else:
            problems.append(f"[tools.shell] {key} must be a list of names or patterns like \"CORP_*\"; ignored")
    shell = table.get("shell", "")
    if not isinstance(shell, str):
        problems.append("[tools.shell] shell must be a program name like \"bash\"; using bash")
        shell = ""
    out["shell"] = shutil.which(shell or "bash") or shutil.which("sh") or "/bin/sh"
    if out["default_timeout"] > out["max_timeout"]:
        out["default_timeout"] = out["max_timeout"]
    return out, problems


def command_needs_approval(arguments: dict, workspace: Path) -> str | bool:
    """False when a workspace rule allows this exact command prefix; otherwise the reason to ask."""
    command = arguments.get("command")
    if not isinstance(command, str):
        return True
    if matching_rule(command, ApprovalPolicy(workspace).command_rules()):
        return False
    words, why = simple_words(command)
    if words is None:
        return f"run_command wants to run: {command} (no command rule can allow this: {why})"
    return f"run_command wants to run: {command}"


@tool(needs_approval=command_needs_approval)
def run_command(command: str, timeout: float | None = None, ctx: ToolContext = None) -> str:
    """Run a shell command (bash) in the workspace folder; returns its output (stdout and stderr together) and exit code. Nothing can be typed into it: interactive programs get end-of-file.

    Args:
        command: the command line, e.g. "pytest -q tests/test_app.py" or "git log --oneline -5".
        timeout: seconds before the command (and everything it started) is stopped; default from config (60).
    """
    ctx = ctx or ToolContext()
    conf, problems = settings()
    if not command.strip():
        raise ValueError("the command is empty")
    limit = conf["default_timeout"] if timeout is None else timeout
    if not limit > 0:  # also NaN
        raise ValueError("timeout must be a positive number of seconds")
    notes = [f"[config: {p}]" for p in problems]
    if limit > conf["max_timeout"]:
        notes.append(f"[timeout lowered from {limit:g} s to the maximum, {conf['max_timeout']:g} s ([tools.shell] max_timeout)]")
        limit = conf["max_timeout"]
    env, _removed = scrub_env(os.environ, conf["scrub_env"], conf["keep_env"])
    env.update(PAGER="cat", GIT_PAGER="cat", GIT_TERMINAL_PROMPT="0")
    result = run_process([conf["shell"], "-c", command], cwd=ctx.workspace, timeout=limit,
                         max_output_bytes=int(conf["max_output_bytes"]), env=env, grace=GRACE_S, cancel=ctx.cancelled)
    output = result.output if result.total_bytes else "(no output)\n"
    if not output.endswith("\n"):
        output += "\n"
    if result.cancelled:
        how = "SIGTERM, then SIGKILL" if result.killed_after_term else "SIGTERM"
        status = f"[stopped after {result.duration_s:.1f} s: the user cancelled; the command and everything it started were stopped ({how})]"
    elif result.timed_out:
        how = "SIGTERM, then SIGKILL" if result.killed_after_term else "SIGTERM"
        status = f"[timed out after {limit:g} s: the command and everything it started were stopped ({how})]"
    elif result.exit_code is None:
        status = f"[killed by {result.signal} after {result.duration_s:.1f} s]"
    else:
        status = f"[exit code {result.exit_code}, {result.duration_s:.1f} s]"
    if result.leftovers:
        notes.append(f"[{result.leftovers} background process{'es' if result.leftovers > 1 else ''} still running when the command ended were stopped]")
    return output + "\n".join([status, *notes])


@hookimpl
def register_tools(register):
    conf, _ = settings()
    run_command.timeout = conf["max_timeout"] + GRACE_S + 5  # the process module enforces the real limit
    register(run_command)


def allow_command(args: str) -> str:
    policy = ApprovalPolicy(Path.cwd())
    if not args.strip():
        rules = policy.command_rules()
        listed = "\n".join(f"  {r}" for r in rules) or "  (none)"
        return f"run_command runs without asking, in {policy.workspace}, commands starting with:\n{listed}"
    try:
        rule = policy.allow_command(args)
    except ValueError as exc:
        return str(exc)
    return f"run_command may now run commands starting with `{rule}` without asking, in {policy.workspace}"


def forget_command(args: str) -> str:
    policy = ApprovalPolicy(Path.cwd())
    if policy.forget_command(args.strip()):
        return f"removed the command rule `{args.strip()}` for {policy.workspace}"
    return f"no command rule `{args.strip()}` in {policy.workspace} (/allow-command lists them)"


@hookimpl
def register_commands(register):
    register("allow-command", allow_command, "Let run_command run commands starting with these words without asking (this folder); no words: list")
    register("forget-command", forget_command, "Remove a /allow-command rule")
