"""The file tools never leave the workspace: `..`, absolute paths, symlinks, symlink loops and odd
text are refused (hundreds of generated attempts), legitimate paths inside keep working."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_tui.agent.parser import ToolCall
from qwen_tui.plugins import PluginHost
from qwen_tui.tools import ToolContext
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import execute_call, run_tool
from qwen_tui.tools.workspace import PathRefused, Workspace

SECRET = "TOP-SECRET-7f3a"
INSIDE = "inside-content"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("confine")
    ws, outside, evil = base / "ws", base / "outside", base / "ws-evil"  # ws-evil: same prefix, another folder
    for folder in (ws / "sub" / "deeper", ws / "ünï cødé", outside / "ünï", evil):
        folder.mkdir(parents=True)
    for f in (ws / "notes.txt", ws / "sub" / "deeper" / "file.txt", ws / "ünï cødé" / "日本.txt"):
        f.write_text(INSIDE)
    for f in (outside / "secret.txt", outside / "ünï" / "секрет.txt", evil / "secret.txt"):
        f.write_text(SECRET)
    links = {
        "in_link": "sub", "in_file_link": "sub/deeper/file.txt", "out_link": "../outside",
        "out_file_link": "../outside/secret.txt", "evil_link": "../ws-evil", "abs_out_link": str(outside),
        "loop_a": "loop_b", "loop_b": "loop_a", "self_loop": "self_loop", "chain1": "chain2", "chain2": "out_link",
        "sub/back_out": "../../outside/secret.txt", "sub/deeper/up": "../../../outside",
    }
    for name, target in links.items():
        os.symlink(target, ws / name)
    home = os.environ.get("QWEN_TUI_HOME")
    host = PluginHost(entry_points=False, user_dir=base / "no-user-plugins", disabled=())
    host.load_all()
    registry = ToolRegistry(host)
    assert {"read_file", "list_dir", "glob", "search"} <= set(registry.names())
    return {"base": base, "ws": ws, "outside": outside, "registry": registry, "host": host, "home": home}


TARGETS = ["outside/secret.txt", "outside/ünï/секрет.txt", "ws-evil/secret.txt", "outside", "ws-evil", "outside/nope.txt"]
INSIDE_DIRS = ["sub", "sub/deeper", "ünï cødé", "in_link", "in_link/deeper"]
NOISE = st.sampled_from(["", "./", ".//", "sub/../", "in_link/../"])


@st.composite
def dotdot_escape(draw):
    """Go k folders down, then k+1 or more up: always above the workspace."""
    down = draw(st.lists(st.sampled_from(["sub", "deeper", "x", "ünï cødé", "."]), max_size=3))
    real_depth = sum(1 for d in down if d != ".")
    extra = draw(st.integers(min_value=0, max_value=3))
    up = [".."] * (real_depth + 1 + extra)
    target = draw(st.sampled_from(TARGETS)) if extra == 0 else draw(st.sampled_from(["etc/passwd", "tmp", "", "outside/secret.txt"]))
    return draw(NOISE) + "/".join([*down, *up, target]).rstrip("/")


@st.composite
def absolute_escape(draw, base):
    root = draw(st.sampled_from([str(base / t) for t in TARGETS] + ["/etc/passwd", "/", "/proc/self/environ", str(base),
                                                                     str(base / "ws" / ".." / "outside" / "secret.txt"), "~", "~/.ssh/id_rsa"]))
    return root + draw(st.sampled_from(["", "/", "/.", "/./"]))


@st.composite
def symlink_escape(draw):
    link = draw(st.sampled_from(["out_link", "out_file_link", "evil_link", "abs_out_link", "chain1", "chain2", "sub/back_out",
                                 "in_link/back_out", "sub/deeper/up", "in_link/deeper/up"]))
    suffix = draw(st.sampled_from(["", "/", "/secret.txt", "/ünï/секрет.txt", "/../outside/secret.txt", "/ünï", "/x/../secret.txt"]))
    return draw(NOISE) + link + suffix


@st.composite
def loop_or_bad_text(draw):
    path = draw(st.sampled_from(["loop_a", "loop_b", "self_loop", "loop_a/x", "sub/../loop_b", "loop_a/../notes.txt",
                                 "self_loop/../../outside/secret.txt", "notes.txt\x00", "sub/\x00/../../outside/secret.txt",
                                 "ünï cødé/\ud800", "\udcff/../../outside/secret.txt"]))
    return path + draw(st.sampled_from(["", "/y"]) if "\x00" not in path else st.just(""))


def escapes(base):
    return st.one_of(dotdot_escape(), absolute_escape(base), symlink_escape(), loop_or_bad_text())


def legit_paths():
    files = st.sampled_from(["notes.txt", "sub/deeper/file.txt", "in_link/deeper/file.txt", "in_file_link", "ünï cødé/日本.txt",
                             "sub/deeper/../deeper/file.txt", "sub/../notes.txt", "in_link/../notes.txt"])
    return st.tuples(NOISE, files).map(lambda t: t[0] + t[1])


def call(world, name, **arguments):
    return run_tool(world["registry"].get(name), arguments, context=ToolContext(workspace=world["ws"]))


def test_generated_escape_attempts_are_all_refused(world):
    ws = Workspace(world["ws"])
    tried: set[str] = set()
    policy = ApprovalPolicy(world["ws"], interactive=False, host=world["host"])

    @settings(max_examples=400, deadline=None, database=None)
    @given(path=escapes(world["base"]))
    def attempt(path):
        tried.add(path)
        with pytest.raises((PathRefused, FileNotFoundError)) as caught:
            ws.resolve(path)
        if "outside/nope" not in path and not path.endswith("/y"):
            assert caught.type is PathRefused, f"{path!r}: {caught.value}"
        for tool in ("read_file", "list_dir"):
            result = call(world, tool, path=path)
            assert not result.ok and SECRET not in result.content, (tool, path, result)
            assert "refused" in result.error or "no such file" in result.error or "is a " in result.error, (path, result.error)
        # Through the agent's path with outside_workspace=true: headless, nobody can say yes.
        tc = ToolCall(name="read_file", arguments={"path": path, "outside_workspace": True}, raw="")
        result = execute_call(tc, registry=world["registry"], policy=policy, context=ToolContext(workspace=world["ws"]))
        assert not result.ok and SECRET not in result.content and SECRET not in (result.error or "")

    attempt()
    assert len(tried) >= 200, f"only {len(tried)} distinct attempts were generated"


def test_legitimate_paths_inside_are_allowed(world):
    ws = Workspace(world["ws"])
    tried: set[str] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(path=legit_paths())
    def attempt(path):
        tried.add(path)
        assert ws.contains(ws.resolve(path))
        result = call(world, "read_file", path=path)
        assert result.ok and INSIDE in result.content, (path, result)

    attempt()
    assert len(tried) >= 10
    absolute = call(world, "read_file", path=str(world["ws"] / "sub" / "deeper" / "file.txt"))
    assert absolute.ok and INSIDE in absolute.content


def test_messages_say_what_was_refused_and_how_to_ask(world):
    refused = call(world, "read_file", path="out_file_link")
    assert "'out_file_link' is outside the workspace" in refused.error
    assert f"resolves to {world['outside'] / 'secret.txt'}" in refused.error and "outside_workspace=true" in refused.error
    assert "symlink loop" in call(world, "read_file", path="loop_a").error
    assert "NUL byte" in call(world, "read_file", path="a\x00b").error
    assert "the path is empty" in call(world, "read_file", path="").error
    assert "no such file or folder: missing.txt" in call(world, "read_file", path="missing.txt").error


def test_outside_reads_ask_every_time_and_run_once_allowed(world):
    registry, host = world["registry"], world["host"]
    tc = ToolCall(name="read_file", arguments={"path": str(world["outside"] / "secret.txt"), "outside_workspace": True}, raw="")
    read_file = registry.get("read_file")
    interactive = ApprovalPolicy(world["ws"], host=host)
    decision = interactive.decide(tc, read_file)
    assert decision.verdict == "ask" and "outside the workspace" in decision.reason
    interactive.remember("read_file", "session")
    assert interactive.decide(tc, read_file).verdict == "ask"  # remembered rules never cover it
    asked = []
    result = execute_call(tc, registry=registry, policy=interactive, context=ToolContext(workspace=world["ws"]),
                          ask=lambda c, t, d: asked.append(d.reason) or "once")
    assert asked and result.ok and SECRET in result.content
    inside = ToolCall(name="read_file", arguments={"path": "notes.txt", "outside_workspace": True}, raw="")
    assert interactive.decide(inside, read_file).verdict == "allow"  # nothing to ask: it is inside


def test_extra_roots_from_config_widen_the_workspace(world, tmp_path):
    from qwen_tui import paths

    (paths.config_dir() / "config.toml").write_text(f'[tools.files]\nextra_roots = ["{world["outside"]}", "/no/such/folder"]\n')
    try:
        result = call(world, "read_file", path=str(world["outside"] / "secret.txt"))
        assert result.ok and SECRET in result.content and "/no/such/folder is not a folder" in result.content
        assert "refused" in call(world, "read_file", path="../ws-evil/secret.txt").error
        assert call(world, "read_file", path="out_file_link").ok  # its target is now inside a root
    finally:
        (paths.config_dir() / "config.toml").unlink()


def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(world, tmp_path):
    ws = Workspace(world["ws"])
    victim = world["ws"] / "swap.txt"
    victim.write_text(INSIDE)
    real = ws.resolve("swap.txt")
    victim.unlink()
    victim.symlink_to(world["outside"] / "secret.txt")
    try:
        with pytest.raises(PathRefused, match="symlink"):
            os.close(ws.open_file(real))
    finally:
        victim.unlink()
