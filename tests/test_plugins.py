"""Plugins: discovery from every source, isolation of faulty ones, hooks, hot reload."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pluggy
import pytest

from qwen_tui import hookspecs, paths
from qwen_tui.agent.parser import ToolCall
from qwen_tui.plugins import PluginHost, PluginWatcher, SessionInfo
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import execute_call, run_tool

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def user_dir(home) -> Path:
    folder = paths.config_dir() / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def greeter(tool: str, greeting: str) -> str:
    return textwrap.dedent(f'''
        from qwen_tui import hookimpl

        def {tool}(name: str) -> str:
            """Greet someone."""
            return "{greeting}, " + name

        @hookimpl
        def register_tools(register):
            register({tool})
    ''')


def host_for(tmp_path, **kwargs) -> PluginHost:
    kwargs.setdefault("builtin_dir", tmp_path / "no-builtin")
    kwargs.setdefault("entry_points", False)
    host = PluginHost(**kwargs)
    host.load_all()
    return host


def call(registry: ToolRegistry, tool_name: str, **arguments) -> str:
    result = run_tool(registry.get(tool_name), arguments)
    return result.content if result.ok else "ERROR " + result.error


def make_dist(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[qwen_tui]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)


def test_hookimpl_is_exposed_lazily():
    code = "import sys, qwen_tui; assert 'pluggy' not in sys.modules; from qwen_tui import hookimpl; print(type(hookimpl).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "HookimplMarker"


def test_discovers_every_source(tmp_path, user_dir, monkeypatch):
    suffix = uuid.uuid4().hex[:8]
    site = tmp_path / "site"
    make_dist(site, f"qwen-tui-hello-{suffix}", {f"hello_{suffix}": greeter("hello", "Hello")}, {"hello": f"hello_{suffix}"})
    monkeypatch.syspath_prepend(str(site))
    (user_dir / "salut.py").write_text(greeter("salut", "Salut"))
    (user_dir / "_helper.py").write_text("raise RuntimeError('helpers are not plugins')\n")
    extra = tmp_path / "hola.py"
    extra.write_text(greeter("hola", "Hola"))
    host = PluginHost(plugin_paths=[extra], disabled=())  # the real builtin folder and entry points
    host.load_all()
    sources = {p.name: p.source for p in host.plugins}
    builtin = {p.stem for p in (ROOT / "plugins").glob("*.py")}
    assert {"clock", "files", "shell"} <= builtin
    assert sources == {**dict.fromkeys(builtin, "builtin"), "hello": "entry point", "salut": "user", "hola": "path"}
    assert all(p.error is None and p.active for p in host.plugins)
    assert host.find(name="hello").origin == f"qwen-tui-hello-{suffix} 0.1"
    assert host.find(name="clock").path == ROOT / "plugins" / "clock.py"
    registry = ToolRegistry(host)
    assert registry.names()[-3:] == ["hello", "salut", "hola"]  # after the built-in tools
    assert registry.names()[0] == "current_time"
    assert call(registry, "hola", name="Ada") == "Hola, Ada"
    assert call(registry, "salut", name="Ada") == "Salut, Ada"
    assert call(registry, "hello", name="Ada") == "Hello, Ada"
    assert "+00:00" in call(registry, "current_time", timezone="UTC")
    assert registry.get("current_time").read_only


def test_plugins_disabled_in_config(tmp_path, home):
    (paths.config_dir() / "config.toml").write_text('[plugins]\ndisabled = ["clock"]\n')
    host = PluginHost(entry_points=False, user_dir=tmp_path / "none")
    host.load_all()
    clock = host.find(name="clock")
    assert clock.disabled and not clock.active and clock.tools == []
    assert "current_time" not in ToolRegistry(host)


FAULTY = {
    "import_error.py": "x = 1\nraise RuntimeError('cannot start')\n",
    "syntax_error.py": "def broken(:\n",
    "hook_raises.py": "from qwen_tui import hookimpl\n\n@hookimpl\ndef register_tools(register):\n    raise ValueError('no config')\n",
    "typo.py": "from qwen_tui import hookimpl\n\n@hookimpl\ndef register_tool(register):\n    pass\n",
    "wrong_args.py": "from qwen_tui import hookimpl\n\n@hookimpl\ndef register_tools(register, colour):\n    pass\n",
    "half_good.py": textwrap.dedent('''
        from qwen_tui import hookimpl

        def fine() -> str:
            """Fine."""
            return "fine"

        def odd(data: bytes) -> str:
            """Bytes are not JSON."""

        @hookimpl
        def register_tools(register):
            register(odd)
            register(fine)
    '''),
}


def test_faulty_plugins_are_reported_and_others_keep_working(tmp_path, user_dir, monkeypatch):
    for name, source in FAULTY.items():
        (user_dir / name).write_text(source)
    (user_dir / "good.py").write_text(greeter("greet", "Hi"))
    suffix = uuid.uuid4().hex[:8]
    make_dist(tmp_path / "site", f"broken-ep-{suffix}", {}, {"missing": f"no_such_module_{suffix}"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    host = host_for(tmp_path, entry_points=True)
    info = {p.name: p for p in host.plugins}
    assert "line 2: RuntimeError: cannot start" in info["import_error"].error
    assert "SyntaxError" in info["syntax_error"].error and "line 1" in info["syntax_error"].error
    assert "hook register_tools raised line 5: ValueError: no config" == info["hook_raises"].error
    assert "unknown hook register_tool" in info["typo"].error
    assert "colour" in info["wrong_args"].error
    assert "ModuleNotFoundError" in info["missing"].error and info["missing"].source == "entry point"
    for name in ("import_error", "syntax_error", "hook_raises", "typo", "wrong_args", "missing"):
        assert not info[name].active and info[name].tools == []
    assert info["half_good"].active and info["half_good"].error is None
    assert "parameter 'data'" in info["half_good"].problems[0]
    registry = ToolRegistry(host)
    assert registry.names() == ["greet", "fine"]  # file order: good.py, half_good.py
    assert call(registry, "greet", name="Bo") == "Hi, Bo" and call(registry, "fine") == "fine"
    assert len(host.problems()) == 7


def test_hooks_called_per_plugin_and_a_raising_hook_disables_only_its_plugin(tmp_path):
    log = tmp_path / "calls.log"
    (tmp_path / "recorder.py").write_text(textwrap.dedent(f'''
        from qwen_tui import hookimpl

        @hookimpl
        def extra_system_prompt(session):
            return "Workspace: " + str(session.workspace) + " model: " + str(session.model)

        @hookimpl
        def tool_call_finished(call, result):
            with open({str(log)!r}, "a") as f:
                f.write(call.name + " " + str(result.ok) + "\\n")

        @hookimpl
        def register_commands(register):
            register("shout", lambda args: args.upper(), "Repeat, loudly")
    '''))
    (tmp_path / "flaky.py").write_text(greeter("wave", "Hey") + textwrap.dedent('''
        @hookimpl
        def extra_system_prompt(session):
            raise KeyError("oops")

        @hookimpl
        def tool_call_finished(call, result):
            raise RuntimeError("never reached: disabled by then")

        @hookimpl
        def approve_tool_call(call, tool):
            raise RuntimeError("never reached")
    '''))
    host = host_for(tmp_path, plugin_paths=[tmp_path / "flaky.py", tmp_path / "recorder.py"])
    registry = ToolRegistry(host)
    assert "wave" in registry
    [command] = host.commands()
    assert (command.name, command.description, command.plugin, command.fn("hi")) == ("shout", "Repeat, loudly", "recorder", "HI")
    prompts = host.extra_system_prompts(SessionInfo(workspace=tmp_path, model="qwen3.5-4b"))
    assert prompts == [f"Workspace: {tmp_path} model: qwen3.5-4b"]
    flaky = host.find(name="flaky")
    assert not flaky.active and "hook extra_system_prompt raised" in flaky.error and "KeyError" in flaky.error
    assert "wave" not in registry  # its tools went with it
    policy = ApprovalPolicy(tmp_path, interactive=False, host=host)
    tc = ToolCall(name="current_time", arguments={}, raw="")
    result = execute_call(tc, registry=registry, policy=policy, host=host)
    assert not result.ok and "unknown tool" in result.error
    assert log.read_text() == "current_time False\n"
    with pytest.raises(AttributeError):
        SessionInfo(workspace=tmp_path).model = "x"  # read-only


def test_tools_that_raise_or_hang_leave_the_rest_working(tmp_path):
    (tmp_path / "risky.py").write_text(textwrap.dedent('''
        import time
        from qwen_tui import hookimpl, tool

        @tool(read_only=True)
        def explode() -> str:
            """Fails."""
            raise OSError("disk on fire")

        @tool(read_only=True, timeout=0.3)
        def stall() -> str:
            """Hangs."""
            time.sleep(30)

        @tool(read_only=True)
        def fine() -> str:
            """Works."""
            return "still here"

        @hookimpl
        def register_tools(register):
            for fn in (explode, stall, fine):
                register(fn)
    '''))
    host = host_for(tmp_path, plugin_paths=[tmp_path / "risky.py"])
    registry = ToolRegistry(host)
    policy = ApprovalPolicy(tmp_path, interactive=False, host=host)

    def run(name):
        return execute_call(ToolCall(name=name, arguments={}, raw=""), registry=registry, policy=policy, host=host)

    assert run("explode").error == "OSError: disk on fire"
    start = time.monotonic()
    assert "timed out after 0.3 s" in run("stall").error
    assert time.monotonic() - start < 0.8
    assert run("fine").content == "still here"
    assert host.find(name="risky").active


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_hot_reload_edit_broken_edit_add_delete(tmp_path, user_dir):
    plugin = user_dir / "greet.py"
    plugin.write_text(greeter("greet", "Hello"))
    host = host_for(tmp_path)
    registry = ToolRegistry(host)
    assert call(registry, "greet", name="Ada") == "Hello, Ada"
    changes: list[list[str]] = []
    watcher = PluginWatcher(host, on_change=lambda infos: changes.append([i.name for i in infos])).start()
    try:
        time.sleep(0.1)
        plugin.write_text(greeter("greet", "Howdy"))  # edit: new behaviour within 1 s
        assert wait_for(lambda: call(registry, "greet", name="Ada") == "Howdy, Ada", 1.0)
        assert ["greet"] in changes

        plugin.write_text(greeter("greet", "Broken").replace("return", "return )"))  # broken edit
        assert wait_for(lambda: host.find(name="greet").error is not None, 1.0)
        info = host.find(name="greet")
        assert info.active and "reload failed, previous version still active" in info.error and "SyntaxError" in info.error
        assert call(registry, "greet", name="Ada") == "Howdy, Ada"

        plugin.write_text(greeter("greet", "Fixed"))
        assert wait_for(lambda: call(registry, "greet", name="Ada") == "Fixed, Ada", 1.0)
        assert host.find(name="greet").error is None

        (user_dir / "extra.py").write_text(greeter("wave", "Bye"))  # a new file
        assert wait_for(lambda: "wave" in registry, 1.0)
        assert call(registry, "wave", name="Ada") == "Bye, Ada"

        plugin.unlink()  # deleted: its tool is gone
        assert wait_for(lambda: "greet" not in registry, 1.0)
        assert host.find(name="greet") is None and "wave" in registry
    finally:
        start = time.monotonic()
        watcher.stop()
        assert time.monotonic() - start < 1.5
    assert not [t for t in threading.enumerate() if t.name == "qwen-tui plugin watcher"]


def test_every_hook_is_documented_and_tested():
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    names = [n for n in dir(hookspecs) if pm.parse_hookspec_opts(hookspecs, n) is not None]
    assert sorted(names) == sorted(["register_tools", "register_commands", "extra_system_prompt", "approve_tool_call", "tool_call_finished",
                                   "plugin_unloading"])
    docs = (ROOT / "docs" / "plugins.md").read_text()
    tests = "\n".join(p.read_text() for p in [*(ROOT / "tests" / "tools").glob("test_*.py"), Path(__file__)])
    for name in names:
        assert f"`{name}" in docs, f"hook {name} is not documented in docs/plugins.md"
        assert re.search(rf"def {name}\(", tests), f"no test implements hook {name}"
        assert getattr(hookspecs, name).__doc__, f"hook {name} has no docstring"


def test_class_based_plugin_tools_share_their_instance(tmp_path):
    (tmp_path / "notes.py").write_text(textwrap.dedent('''
        from qwen_tui import hookimpl, tool

        class Notes:
            """Tools that share one list."""

            def __init__(self):
                self.items = []

            def add(self, text: str) -> int:
                """Add a note; returns how many there are."""
                self.items.append(text)
                return len(self.items)

            @tool(read_only=True)
            def show(self) -> list[str]:
                """All notes."""
                return self.items

        @hookimpl
        def register_tools(register):
            register(Notes(), name="notes")
    '''))
    registry = ToolRegistry(host_for(tmp_path, plugin_paths=[tmp_path / "notes.py"]))
    assert registry.names() == ["notes_add", "notes_show"] and registry.get("notes_show").read_only
    assert call(registry, "notes_add", text="milk") == "1"
    assert call(registry, "notes_add", text="eggs") == "2"
    assert call(registry, "notes_show") == '["milk", "eggs"]'


def test_plugin_machinery_imports_neither_textual_nor_llama_cpp():
    code = (
        "import sys\n"
        "from qwen_tui.plugins import PluginHost\n"
        "import qwen_tui.tools.cli_tools, qwen_tui.tools.cli_plugins, qwen_tui.tools.approval, qwen_tui.tools.registry\n"
        "PluginHost().load_all()\n"
        "print(sorted(m for m in ('textual', 'llama_cpp') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_agent_loop_path_from_model_text_to_tool_result(tmp_path):
    from qwen_tui.agent.parser import parse_reply

    host = PluginHost(entry_points=False, user_dir=tmp_path / "none", disabled=())
    host.load_all()
    registry = ToolRegistry(host)
    reply = "Let me check.\n<tool_call>\n<function=current_time>\n<parameter=timezone>\nAsia/Tokyo\n</parameter>\n</function>\n</tool_call>"
    [tool_call] = parse_reply(reply, tools=registry.openai_schemas()).tool_calls
    policy = ApprovalPolicy(tmp_path, interactive=False, host=host)
    result = execute_call(tool_call, registry=registry, policy=policy, host=host)
    assert result.ok and "+09:00" in result.for_model()


def test_a_plugin_broken_at_start_loads_once_fixed_and_names_are_unique(tmp_path, user_dir):
    plugin = user_dir / "late.py"
    plugin.write_text("import nope_not_installed\n")
    (user_dir / "clock.py").write_text(greeter("other_clock", "Tick"))  # same name as the builtin
    host = PluginHost(entry_points=False, disabled=())
    host.load_all()
    assert "ModuleNotFoundError" in host.find(name="late").error
    [user_clock] = [p for p in host.plugins if p.name == "clock" and p.source == "user"]
    assert "already loaded (builtin" in user_clock.error and not user_clock.active
    registry = ToolRegistry(host)
    with PluginWatcher(host):
        plugin.write_text(greeter("late_tool", "Finally"))
        assert wait_for(lambda: "late_tool" in registry, 1.0)
    info = host.find(name="late")
    assert info.active and info.error is None and call(registry, "late_tool", name="x") == "Finally, x"


def test_a_plugin_releases_what_it_holds_when_reloaded_removed_disabled_or_at_exit(tmp_path):
    log = tmp_path / "unloaded.log"
    source = textwrap.dedent(f'''
        from qwen_tui import hookimpl
        VERSION = "{{version}}"

        def hello() -> str:
            """Say hello."""
            return VERSION

        @hookimpl
        def register_tools(register):
            register(hello)

        @hookimpl
        def plugin_unloading():
            with open({str(log)!r}, "a") as f:
                f.write(VERSION + "\\n")
            if VERSION == "3":
                raise RuntimeError("cleanup failed")
    ''')
    plugin = tmp_path / "holder.py"
    plugin.write_text(source.replace("{version}", "1"))
    host = host_for(tmp_path, plugin_paths=[plugin])
    registry = ToolRegistry(host)
    assert call(registry, "hello") == "1" and not log.exists()
    plugin.write_text(source.replace("{version}", "2"))
    host.reload_path(plugin, source="path")
    assert call(registry, "hello") == "2"
    assert log.read_text().split() == ["1"]  # the old version released, after the new one took over
    plugin.unlink()
    host.reload_path(plugin, source="path")
    assert log.read_text().split() == ["1", "2"]
    plugin.write_text(source.replace("{version}", "3"))
    host.reload_path(plugin, source="path")
    host.close()  # exiting: its cleanup raises, which is logged, never raised
    assert log.read_text().split() == ["1", "2", "3"]
