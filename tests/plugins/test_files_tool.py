"""read_file, list_dir, glob and search as the model uses them (the real built-in plugin, real files)."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest

from qwen_tui import paths
from qwen_tui.agent.parser import ToolCall, parse_reply
from qwen_tui.plugins import PluginHost
from qwen_tui.tools import ToolContext
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import execute_call, run_tool
from qwen_tui.tools.workspace import IgnoreStack, glob_matcher


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    host = PluginHost(entry_points=False, user_dir=tmp_path_factory.mktemp("none"), disabled=())
    host.load_all()
    return ToolRegistry(host)


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    return root


def call(registry, ws, name, **arguments):
    result = run_tool(registry.get(name), arguments, context=ToolContext(workspace=ws))
    return result.content if result.ok else "ERROR " + result.error


def test_read_file_whole_and_by_range(registry, ws):
    (ws / "a.py").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    assert call(registry, ws, "read_file", path="a.py") == "[a.py: lines 1-10 of 10]\n" + "".join(f"line {i}\n" for i in range(1, 11))
    part = call(registry, ws, "read_file", path="a.py", offset=4, limit=3)
    assert part.splitlines() == ["[a.py: lines 4-6 of 10]", "line 4", "line 5", "line 6",
                                 "[truncated: lines 7-10 not shown; use offset=7 to read on]"]
    assert "offset 11 is past the end of a.py (10 lines)" in call(registry, ws, "read_file", path="a.py", offset=11)
    assert "offset is a line number and starts at 1" in call(registry, ws, "read_file", path="a.py", offset=0)
    assert "is a folder: use list_dir" in call(registry, ws, "read_file", path=".")
    (ws / "empty.txt").write_text("")
    assert call(registry, ws, "read_file", path="empty.txt") == "empty.txt is empty"


def test_a_long_file_is_cut_with_a_hint_and_can_be_read_on(registry, ws):
    lines = [f"{i:05d} " + "x" * 93 + "\n" for i in range(1, 1001)]  # 100 characters a line, 100 KB
    (ws / "big.txt").write_text("".join(lines))
    first = call(registry, ws, "read_file", path="big.txt")
    assert first.startswith("[big.txt: lines 1-160 of 1000]\n") and len(first) < 16_500
    assert first.endswith("[truncated: lines 161-1000 not shown; use offset=161 to read on]")
    second = call(registry, ws, "read_file", path="big.txt", offset=161)
    assert second.splitlines()[1] == lines[160].rstrip("\n")
    pieces, offset = [], 1
    while True:  # following the hints reads every line exactly once
        text = call(registry, ws, "read_file", path="big.txt", offset=offset)
        body = text.splitlines()[1:]
        if body[-1].startswith("[truncated"):
            offset = int(body[-1].split("offset=")[1].split()[0])
            body = body[:-1]
            pieces += body
        else:
            pieces += body
            break
    assert pieces == [line.rstrip("\n") for line in lines]


def test_max_read_chars_from_config_and_overlong_lines(registry, ws):
    (paths.config_dir() / "config.toml").write_text("[tools.files]\nmax_read_chars = 1000\n")
    (ws / "one-line.min.js").write_text("a" * 50_000)
    text = call(registry, ws, "read_file", path="one-line.min.js")
    assert text.startswith("[one-line.min.js: lines 1-1 of 1]\n" + "a" * 1000)
    assert "[... line 1 cut: 49000 more characters]" in text and len(text) < 1200


def test_binary_files_are_detected(registry, ws):
    (ws / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3000))
    (ws / "blob.bin").write_bytes(b"abc\x00def" * 100)
    assert call(registry, ws, "read_file", path="img.png") == "img.png is a binary file (PNG image, 2.9 KB): not shown as text"
    assert call(registry, ws, "read_file", path="blob.bin").startswith("blob.bin is a binary file (binary data, 700 bytes)")


@pytest.mark.parametrize("encoding, data, label", [
    ("utf-8", "héllo wörld ✓\n".encode(), ""),
    ("utf-8-sig", codecs.BOM_UTF8 + "héllo wörld ✓\n".encode(), ""),
    ("utf-16", "héllo wörld ✓\n".encode("utf-16"), ", decoded as utf-16"),
    ("utf-16-be", codecs.BOM_UTF16_BE + "héllo wörld ✓\n".encode("utf-16-be"), ", decoded as utf-16"),
    ("utf-32", "héllo wörld ✓\n".encode("utf-32"), ", decoded as utf-32"),
    ("cp1252", "héllo wörld “quoted”\n".encode("cp1252"), ", decoded as cp1252"),
    ("latin-1", b"h\xe9llo \x81\x8d\n", ", decoded as latin-1"),
])
def test_encodings_are_detected(registry, ws, encoding, data, label):
    (ws / "t.txt").write_bytes(data)
    text = call(registry, ws, "read_file", path="t.txt")
    assert text.splitlines()[0] == f"[t.txt: lines 1-1 of 1{label}]"
    expected = data.decode({"utf-16-be": "utf-16"}.get(encoding, encoding))
    assert text.splitlines()[1] == expected.lstrip("\ufeff").rstrip("\n")


def test_list_dir(registry, ws, tmp_path):
    (ws / "src").mkdir()
    (ws / "README.md").write_text("hi")
    (ws / "src" / "app.py").write_text("x" * 2048)
    (tmp_path / "elsewhere").mkdir()
    (ws / "link").symlink_to(tmp_path / "elsewhere")
    listing = call(registry, ws, "list_dir").splitlines()
    assert listing == ["[.: 3 entries]", "src/", "README.md  (2 bytes)", f"link -> {tmp_path / 'elsewhere'}  (outside the workspace)"]
    assert call(registry, ws, "list_dir", path="src").splitlines() == ["[src: 1 entries]", "app.py  (2.0 KB)"]
    assert "is a file: use read_file" in call(registry, ws, "list_dir", path="README.md")
    assert "refused" in call(registry, ws, "list_dir", path="link")


def make_repo(ws: Path) -> None:
    files = {
        ".gitignore": "# build output\nbuild/\n*.log\n!keep.log\n/top-only.txt\nnode_modules\n",
        "src/app.py": "def main():\n    return 'TODO: ship'\n",
        "src/util.py": "def helper():\n    pass  # todo later\n",
        "src/.gitignore": "generated_*.py\n",
        "src/generated_api.py": "TODO in generated code\n",
        "src/deep/er/mod.py": "TODO deep\n",
        "build/out.py": "TODO in build output\n",
        "debug.log": "TODO in a log\n",
        "keep.log": "TODO kept log\n",
        "top-only.txt": "TODO top\n",
        "docs/top-only.txt": "TODO docs copy\n",
        "node_modules/pkg/index.js": "TODO vendored\n",
        ".git/HEAD": "TODO git internals\n",
    }
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    (ws / "image.bin").write_bytes(b"TODO\x00\x01\x02")


def test_glob_respects_gitignore(registry, ws):
    make_repo(ws)
    assert call(registry, ws, "glob", pattern="**/*.py").splitlines() == ["src/app.py", "src/util.py", "src/deep/er/mod.py"]
    assert call(registry, ws, "glob", pattern="*.py", path="src").splitlines() == ["src/app.py", "src/util.py"]
    assert call(registry, ws, "glob", pattern="**/*.log").splitlines() == ["keep.log"]
    everything = call(registry, ws, "glob", pattern="**/*.py", include_ignored=True).splitlines()
    assert "build/out.py" in everything and "src/generated_api.py" in everything
    assert not any(p.startswith(".git/") for p in call(registry, ws, "glob", pattern="**", include_ignored=True).splitlines())
    assert "no files match" in call(registry, ws, "glob", pattern="*.rs")
    assert "must be relative and without '..'" in call(registry, ws, "glob", pattern="../*")
    assert "must be relative" in call(registry, ws, "glob", pattern="/etc/*")


def test_search_respects_gitignore_and_skips_binaries(registry, ws):
    make_repo(ws)
    found = call(registry, ws, "search", pattern="TODO").splitlines()
    assert found == ["keep.log:1: TODO kept log", "docs/top-only.txt:1: TODO docs copy", "src/app.py:2:     return 'TODO: ship'",
                     "src/deep/er/mod.py:1: TODO deep"]
    assert call(registry, ws, "search", pattern="todo", ignore_case=True, glob="*.py", path="src").splitlines() == [
        "src/app.py:2:     return 'TODO: ship'", "src/util.py:2:     pass  # todo later"]
    assert call(registry, ws, "search", pattern=r"def \w+\(", path="src/util.py") == "src/util.py:1: def helper():"
    every = call(registry, ws, "search", pattern="TODO", include_ignored=True)
    assert "build/out.py:1:" in every and "node_modules/pkg/index.js:1:" in every and ".git/HEAD" not in every and "image.bin" not in every
    assert "invalid regular expression '('" in call(registry, ws, "search", pattern="(")
    assert call(registry, ws, "search", pattern="nothing-like-this").startswith("no matches for 'nothing-like-this' in ")


def test_search_caps_its_results(registry, ws):
    (paths.config_dir() / "config.toml").write_text("[tools.files]\nmax_results = 5\n")
    (ws / "many.txt").write_text("hit\n" * 50)
    out = call(registry, ws, "search", pattern="hit").splitlines()
    assert out[:5] == [f"many.txt:{i}: hit" for i in range(1, 6)] and out[5] == "[stopped at 5 matches; narrow the pattern, path or glob]"


def test_gitignore_rules_follow_git(tmp_path):
    def ignored(text, path, is_dir=False):
        (tmp_path / ".gitignore").write_text(text)
        return IgnoreStack().entered(tmp_path).ignored(tmp_path / path, is_dir)

    assert ignored("*.log", "a/b/c.log") and not ignored("*.log", "a.logx")
    assert ignored("/top.txt", "top.txt") and not ignored("/top.txt", "sub/top.txt")
    assert ignored("doc/*.txt", "doc/a.txt") and not ignored("doc/*.txt", "doc/sub/a.txt")
    assert ignored("**/foo", "a/b/foo") and ignored("**/foo", "foo")
    assert ignored("a/**/b", "a/b") and ignored("a/**/b", "a/x/y/b")
    assert ignored("abc/**", "abc/x/y") and not ignored("abc/**", "abc")
    assert ignored("build/", "build", is_dir=True) and not ignored("build/", "build")
    assert ignored("f[0-9].txt", "f3.txt") and not ignored("f[!0-9].txt", "f3.txt") and ignored("f?.txt", "fa.txt")
    assert not ignored("*.log\n!keep.log", "keep.log") and ignored("\\#x", "#x") and not ignored("# comment", "# comment")
    assert ignored("trailing   ", "trailing") and ignored("\\!bang", "!bang")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".gitignore").write_text("/only-here.txt\n!*.log\n")  # relative to its own folder; deeper wins
    stack = IgnoreStack().entered(tmp_path).entered(tmp_path / "sub")
    assert stack.ignored(tmp_path / "sub" / "only-here.txt", False) and not stack.ignored(tmp_path / "only-here.txt", False)
    assert ignored("*.log", "sub/x.log") and not stack.ignored(tmp_path / "sub" / "x.log", False)


def test_glob_patterns_match_like_a_shell():
    def match(pattern, path):
        return glob_matcher(pattern)(path)

    assert match("**/*.py", "a/b.py") and match("**/*.py", "b.py") and not match("*.py", "a/b.py")
    assert match("src", "src") and not match("src", "src/app.py")  # a folder's contents are not the folder
    assert match("abc/**", "abc/x/y") and not match("abc/**", "abc") and not match("a/**/b", "a/b/c")


def test_an_ignored_folder_named_on_purpose_is_searched(registry, ws):
    make_repo(ws)
    assert call(registry, ws, "search", pattern="TODO", path="build") == "build/out.py:1: TODO in build output"
    assert call(registry, ws, "glob", pattern="**/*.js", path="node_modules").splitlines() == ["node_modules/pkg/index.js"]


def test_tools_reach_the_model_through_the_agent_path(registry, ws):
    (ws / "notes.txt").write_text("remember the milk\n")
    schemas = registry.openai_schemas()
    names = {s["function"]["name"] for s in schemas}
    assert {"read_file", "list_dir", "glob", "search"} <= names
    read_schema = next(s for s in schemas if s["function"]["name"] == "read_file")["function"]["parameters"]
    assert set(read_schema["properties"]) == {"path", "offset", "limit", "outside_workspace"}  # no ctx for the model
    reply = "<tool_call>\n<function=read_file>\n<parameter=path>\nnotes.txt\n</parameter>\n</function>\n</tool_call>"
    [tool_call] = parse_reply(reply, tools=schemas).tool_calls
    policy = ApprovalPolicy(ws, interactive=False)  # headless: read-only tools still run
    result = execute_call(tool_call, registry=registry, policy=policy, context=ToolContext(workspace=ws))
    assert result.ok and "remember the milk" in result.for_model()
    escape = execute_call(ToolCall(name="read_file", arguments={"path": "../../etc/passwd"}, raw=""), registry=registry,
                          policy=policy, context=ToolContext(workspace=ws))
    assert not escape.ok and "outside the workspace" in escape.for_model() and "root:" not in escape.for_model()


def test_fifos_never_block_the_tools(registry, ws):
    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("needle\n")
    os.mkfifo(ws / "pipe")
    os.mkfifo(ws / "src" / ".gitignore")  # even a FIFO where a .gitignore is expected
    assert "is not a regular file" in call(registry, ws, "read_file", path="pipe")
    out = call(registry, ws, "search", pattern="needle")
    assert out.startswith("src/a.py:1: needle") and "2 files skipped" in out
    assert "pipe  (special file)" in call(registry, ws, "list_dir")
