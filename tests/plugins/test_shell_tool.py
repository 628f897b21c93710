"""run_command through the real built-in plugin: timeouts that stop the whole process group, capped
output with bounded memory, stdin closed, secrets scrubbed, approval only by exact prefix rules."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qwen_tui import paths
from qwen_tui.agent.parser import ToolCall
from qwen_tui.plugins import PluginHost
from qwen_tui.tools import ToolContext
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.process import group_members
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import execute_call, run_tool

ROOT = Path(__file__).resolve().parents[2]
IGNORE_TERM = f"{shlex.quote(sys.executable)} -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(999)'"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))


@pytest.fixture
def host(tmp_path):
    host = PluginHost(entry_points=False, user_dir=tmp_path / "none", disabled=())
    host.load_all()
    return host


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    return root


def run(host, ws, command, **arguments):
    result = run_tool(ToolRegistry(host).get("run_command"), {"command": command, **arguments}, context=ToolContext(workspace=ws))
    assert result.ok, result.error
    return result.content


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_output_exit_code_and_working_folder(host, ws):
    out = run(host, ws, "pwd; echo to-stderr >&2; exit 3")
    assert out == f"{ws}\nto-stderr\n[exit code 3, {out.rsplit(', ', 1)[1]}"
    assert run(host, ws, "true").startswith("(no output)\n[exit code 0, ")
    assert "[killed by SIGSEGV" in run(host, ws, "kill -SEGV $$")


def test_sleep_999_is_killed_at_the_timeout_with_its_whole_group(host, ws):
    start = time.monotonic()
    out = run(host, ws, "echo $$; sleep 999 & echo $!; sleep 999", timeout=1)
    elapsed = time.monotonic() - start
    assert "[timed out after 1 s: the command and everything it started were stopped (SIGTERM)]" in out
    assert 1 <= elapsed < 4
    pgid, child = map(int, out.split()[:2])
    assert group_members(pgid) == [] and not alive(child)


def test_a_child_ignoring_sigterm_is_killed_two_seconds_later(host, ws):
    start = time.monotonic()
    out = run(host, ws, f"trap '' TERM; echo $$; {IGNORE_TERM} & echo $!; {IGNORE_TERM}", timeout=1)
    elapsed = time.monotonic() - start
    assert "(SIGTERM, then SIGKILL)]" in out
    assert 3 <= elapsed < 6  # SIGTERM at 1 s, SIGKILL at 1 + 2 s
    pgid, child = map(int, out.split()[:2])
    assert group_members(pgid) == [] and not alive(child)


def test_background_children_are_cleaned_up_when_the_command_ends(host, ws):
    out = run(host, ws, f"echo $$; sleep 999 & echo $!; {IGNORE_TERM} & echo $!; echo done")
    pgid, sleeper, stubborn = map(int, out.split()[:3])
    assert "done\n[exit code 0" in out and "[2 background processes still running when the command ended were stopped]" in out
    assert group_members(pgid) == [] and not alive(sleeper) and not alive(stubborn)


@pytest.mark.parametrize("program", [shlex.quote(sys.executable), shlex.quote(sys.executable) + " -i", "cat", "read line; echo got:$line"])
def test_interactive_programs_get_end_of_file_and_return_promptly(host, ws, program):
    start = time.monotonic()
    out = run(host, ws, program, timeout=30)
    assert time.monotonic() - start < 10 and "timed out" not in out
    assert "[exit code 0" in out or "[exit code 1" in out


def test_no_controlling_terminal_to_take_over(host, ws):
    out = run(host, ws, "echo hi > /dev/tty; echo rc=$?")
    assert "rc=1" in out


SECRETS = {"MY_API_KEY": "sk-aaa111", "GITHUB_TOKEN": "ghp-bbb222", "DB_PASSWORD": "hunter2-ccc", "HF_TOKEN": "hf-ddd444",
           "AWS_SECRET_ACCESS_KEY": "aws-eee555", "AWS_ACCESS_KEY_ID": "AKIAFFF666", "session_secret": "lower-ggg777",
           "SSL_PRIVATE_KEY": "pem-hhh888", "CORP_VAULT_ADDR": "corp-iii999", "NPM_CREDENTIALS": "npm-jjj000"}


def test_secret_environment_variables_are_invisible(host, ws, monkeypatch):
    (paths.config_dir() / "config.toml").write_text('[tools.shell]\nscrub_env = ["CORP_*"]\nkeep_env = ["KEEP_THIS_TOKEN"]\n')
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARMLESS_SETTING", "visible-123")
    monkeypatch.setenv("KEEP_THIS_TOKEN", "kept-456")
    out = run(host, ws, "env; cat /proc/$$/environ | tr '\\0' '\\n'")
    for name, value in SECRETS.items():
        assert value not in out and f"{name}=" not in out, name
    assert "HARMLESS_SETTING=visible-123" in out and "KEEP_THIS_TOKEN=kept-456" in out and "PATH=" in out


def test_output_cap_keeps_head_and_tail(host, ws):
    (paths.config_dir() / "config.toml").write_text("[tools.shell]\nmax_output_bytes = 2000\n")
    out = run(host, ws, "seq 1 100000")
    total = sum(len(f"{i}\n") for i in range(1, 100001))
    assert out.startswith("1\n2\n3\n") and "99999\n100000\n[exit code 0" in out
    assert f"[... {total - 2000} bytes elided ...]" in out and len(out) < 2200


MEMORY_PROBE = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    from qwen_tui.plugins import PluginHost
    from qwen_tui.tools import ToolContext
    from qwen_tui.tools.registry import ToolRegistry
    from qwen_tui.tools.runner import run_tool

    def peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    host = PluginHost(entry_points=False, user_dir=Path(sys.argv[1]), disabled=())
    host.load_all()
    tool = ToolRegistry(host).get("run_command")
    ctx = ToolContext(workspace=Path(sys.argv[1]))
    run_tool(tool, {"command": "echo warm-up"}, context=ctx)
    before = peak_kb()
    result = run_tool(tool, {"command": "head -c 100M /dev/urandom | base64", "timeout": 200}, context=ctx)
    print(json.dumps({"before_kb": before, "after_kb": peak_kb(), "ok": result.ok, "content": result.content, "error": result.error}))
''')


def test_a_flood_of_output_is_capped_with_bounded_memory(tmp_path):
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"], report["error"]
    content = report["content"]
    encoded = 4 * math.ceil(100 * 2**20 / 3)
    total = encoded + math.ceil(encoded / 76)  # base64 wraps at 76 columns
    assert f"[... {total - 16_000} bytes elided ...]" in content and "[exit code 0" in content
    assert len(content) < 17_000
    growth_mb = (report["after_kb"] - report["before_kb"]) / 1024
    assert growth_mb < 20, f"peak RSS grew by {growth_mb:.1f} MB while {total / 2**20:.0f} MB of output streamed through"


def test_timeout_default_and_maximum_come_from_config(host, ws):
    (paths.config_dir() / "config.toml").write_text("[tools.shell]\ndefault_timeout = 1\nmax_timeout = 2\n")
    host = PluginHost(entry_points=False, user_dir=ws / "none", disabled=())
    host.load_all()
    start = time.monotonic()
    assert "[timed out after 1 s" in run(host, ws, "sleep 30")
    out = run(host, ws, "sleep 30", timeout=100)
    assert "[timed out after 2 s" in out and "[timeout lowered from 100 s to the maximum, 2 s" in out
    assert time.monotonic() - start < 8
    assert ToolRegistry(host).get("run_command").timeout == 2 + 2 + 5  # the runner waits for the kill


def test_bad_config_values_fall_back_with_a_note(host, ws):
    (paths.config_dir() / "config.toml").write_text('[tools.shell]\ndefault_timeout = "soon"\nscrub_env = "X"\n')
    out = run(host, ws, "echo ok")
    assert out.startswith("ok\n[exit code 0") and "[config: [tools.shell] default_timeout must be a positive number; using 60]" in out


def test_approval_asks_unless_an_exact_prefix_rule_allows(host, ws, monkeypatch):
    registry = ToolRegistry(host)
    tool = registry.get("run_command")

    def decide(command, **kwargs):
        return ApprovalPolicy(ws, host=host, **kwargs).decide(ToolCall(name="run_command", arguments={"command": command}, raw=""), tool)

    asked = decide("git status")
    assert asked.verdict == "ask" and asked.reason == "run_command wants to run: git status"
    policy = ApprovalPolicy(ws, host=host)
    policy.remember("run_command", "session")
    assert policy.decide(ToolCall(name="run_command", arguments={"command": "ls"}, raw=""), tool).verdict == "ask"  # still asks
    monkeypatch.chdir(ws)  # slash commands act on the folder qwen-tui runs in
    commands = {c.name: c for c in host.commands()}
    assert "may now run commands starting with `echo hello`" in commands["allow-command"].fn("echo  hello")
    assert "cannot be a command rule: it contains a ';'" in commands["allow-command"].fn("echo; rm -rf ~")
    assert "  echo hello" in commands["allow-command"].fn("")
    assert decide("echo hello world").verdict == "allow"
    for sneaky in ("echo hello; touch pwned", "echo hello && touch pwned", "echo hello | sh", "echo hello $(touch pwned)",
                   "echo hello `touch pwned`", "bash -c 'echo hello'", "X=1 echo hello", "echo hello > pwned", "echo hellox"):
        decision = decide(sneaky, interactive=False)
        assert decision.verdict == "deny", sneaky
        result = execute_call(ToolCall(name="run_command", arguments={"command": sneaky}, raw=""), registry=registry,
                              policy=ApprovalPolicy(ws, host=host, interactive=False), host=host, context=ToolContext(workspace=ws))
        assert result.denied and not (ws / "pwned").exists()
    ok = execute_call(ToolCall(name="run_command", arguments={"command": "echo hello world"}, raw=""), registry=registry,
                      policy=ApprovalPolicy(ws, host=host, interactive=False), host=host, context=ToolContext(workspace=ws))
    assert ok.ok and ok.content.startswith("hello world\n[exit code 0")
    assert "removed the command rule" in commands["forget-command"].fn("echo hello")
    assert decide("echo hello world").verdict == "ask"


EXIT_MID_COMMAND = textwrap.dedent('''
    import sys, threading, time
    from pathlib import Path
    from qwen_tui.tools.process import run_process

    threading.Thread(target=run_process, args=(["bash", "-c", "echo $$ > " + sys.argv[1] + "; sleep 999"],),
                     kwargs={"cwd": ".", "timeout": 999}, daemon=True).start()
    while not Path(sys.argv[1]).exists() or not Path(sys.argv[1]).read_text().strip():
        time.sleep(0.02)
''')


def test_commands_in_flight_are_killed_when_qwen_tui_exits(tmp_path):
    marker = tmp_path / "pgid"
    out = subprocess.run([sys.executable, "-c", EXIT_MID_COMMAND, str(marker)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    pgid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(pgid) == []


def test_cancelling_the_agent_stops_a_running_command_and_its_whole_group(host, ws, tmp_path):
    import threading

    from qwen_tui.agent.events import AgentFinished, ToolCallResult
    from qwen_tui.agent.loop import Agent
    from qwen_tui.testing.fake_engine import FakeEngine

    marker = ws / "pgid"
    command = f"echo $$ > {marker}; {IGNORE_TERM} & sleep 999"  # a child that ignores SIGTERM, too
    reply = f"<tool_call>\n<function=run_command>\n<parameter=command>\n{command}\n</parameter>\n</function>\n</tool_call>"
    agent = Agent(FakeEngine([reply, "never asked"]), ToolRegistry(host), ApprovalPolicy(ws, yolo=True, store_path=tmp_path / "a.json"),
                  host, context=ToolContext(workspace=ws), tool_timeout=999)
    box = {}
    runner = threading.Thread(target=lambda: box.update(events=list(agent.run([{"role": "user", "content": "go"}]))), daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    pgid = int(marker.read_text())
    time.sleep(0.3)  # the background child is running too
    assert len(group_members(pgid)) >= 2
    cancelled_at = time.monotonic()
    agent.cancel()
    while group_members(pgid) and time.monotonic() - cancelled_at < 5:
        time.sleep(0.01)
    gone_after = time.monotonic() - cancelled_at
    assert group_members(pgid) == [] and gone_after < 1.5, gone_after  # SIGTERM at once, SIGKILL 0.5 s later
    runner.join(5)
    assert not runner.is_alive()
    events = box["events"]
    done = events[-1]
    assert isinstance(done, AgentFinished) and done.reason == "cancelled"
    [result] = [e.result for e in events if isinstance(e, ToolCallResult)]
    assert "the user cancelled; the command and everything it started were stopped (SIGTERM" in result.for_model()
    assert done.messages[-1]["role"] == "tool" and "the user cancelled" in done.messages[-1]["content"]


def test_a_cancelled_command_ignoring_sigterm_is_killed_half_a_second_later(ws):
    import threading

    from qwen_tui.tools.process import run_process

    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    start = time.monotonic()
    result = run_process(["bash", "-c", f"trap '' TERM; echo $$; {IGNORE_TERM}"], cwd=ws, timeout=999, cancel=cancel)
    elapsed = time.monotonic() - start
    assert result.cancelled and not result.timed_out and result.killed_after_term and result.signal == "SIGKILL"
    assert 0.9 <= elapsed < 2.5  # cancel at 0.5 s, SIGKILL 0.5 s later
    assert group_members(int(result.output.split()[0])) == []
