"""`qwen-tui models list|add|info|rm|recommend` through the real CLI (subprocesses, real files)."""

from __future__ import annotations

import json
import shutil

from hub_helpers import cli_env, run_cli

from qwen_tui.testing.tiny_mmproj import header_only_mmproj


def test_info_reads_the_header_of_a_path(tiny_qwen35_path, tmp_path):
    env = cli_env(tmp_path)
    result = run_cli(env, "models", "info", str(tiny_qwen35_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "architecture   qwen35" in out
    assert "parameters     16.1M (16,060,104)" in out
    assert f"file size      28.2 MB ({tiny_qwen35_path.stat().st_size:,} bytes)" in out
    assert "quant          Q8_0" in out
    assert "context        262,144 tokens (trained)" in out
    assert "layers         4 (1 full attention, 3 Gated DeltaNet)" in out
    assert "vision         no (no mmproj file next to it)" in out

    facts = json.loads(run_cli(env, "models", "info", str(tiny_qwen35_path), "--json").stdout)
    assert {k: facts[k] for k in ("architecture", "parameters", "quant", "context_length", "vision")} == {
        "architecture": "qwen35", "parameters": 16_060_104, "quant": "Q8_0", "context_length": 262_144,
        "vision": False}


def test_info_of_the_demo_model_and_a_vision_pair(demo_model_path, tiny_qwen35_path, tmp_path):
    env = cli_env(tmp_path)
    demo = json.loads(run_cli(env, "models", "info", str(demo_model_path), "--json").stdout)
    assert (demo["architecture"], demo["quant"], demo["context_length"], demo["deltanet_layers"]) == (
        "llama", "Q4_1", 8192, 0)

    folder = tmp_path / "pair"
    folder.mkdir()
    model = folder / "Qwen3.5-0.8B-Q4_K_M.gguf"
    shutil.copy(tiny_qwen35_path, model)
    (folder / "mmproj-F16.gguf").write_bytes(b"GGUF junk")  # named like a projector, isn't one
    out = run_cli(env, "models", "info", str(model)).stdout
    assert "quant          Q8_0" in out  # the tensors say Q8_0 whatever the name says
    assert "vision         no (" in out and "mmproj-F16.gguf is" in out
    header_only_mmproj(folder / "mmproj-F16.gguf")
    out = run_cli(env, "models", "info", str(model)).stdout
    assert f"vision         yes (projector {folder / 'mmproj-F16.gguf'})" in out


def test_bad_targets_are_one_line_errors(tmp_path):
    env = cli_env(tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    for args, message in [
        (["info", str(text)], "is not a GGUF model file"),
        (["info", "qwen3.5:4b"], "no local model named 'qwen3.5:4b'"),
        (["rm", "nothing"], "no local model named 'nothing'"),
        (["add", str(tmp_path / "missing.gguf")], "model file not found"),
        (["recommend", "--ctx", "10"], "--ctx must be at least 512"),
        (["frobnicate"], "invalid choice"),
    ]:
        result = run_cli(env, "models", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (args, result.stderr)


def test_add_list_and_rm_keep_a_users_file(tiny_qwen35_path, tmp_path):
    env = cli_env(tmp_path)
    assert json.loads(run_cli(env, "models", "list", "--json").stdout) == []
    assert "no models yet" in run_cli(env, "models", "list").stdout
    mine = tmp_path / "elsewhere" / "my-qwen.gguf"
    mine.parent.mkdir()
    shutil.copy(tiny_qwen35_path, mine)
    added = run_cli(env, "models", "add", str(mine), "--name", "mine")
    assert added.returncode == 0 and "added mine" in added.stdout

    # a GGUF dropped into the models folder shows up too
    folder_model = tmp_path / "data" / "models" / "dropped.gguf"
    folder_model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_qwen35_path, folder_model)
    listed = json.loads(run_cli(env, "models", "list", "--json").stdout)
    assert [(m["name"], m["source"], m["exists"]) for m in listed] == [("mine", "added", True), ("dropped", "folder", True)]
    table = run_cli(env, "models", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "QUANT", "SIZE", "SOURCE", "PATH"]
    assert table[1].split()[:4] == ["mine", "Q8_0", "28", "MB"]

    info = json.loads(run_cli(env, "models", "info", "mine", "--json").stdout)
    assert info["path"] == str(mine)

    removed = run_cli(env, "models", "rm", "mine")
    assert removed.returncode == 0 and "its files stay" in removed.stdout
    assert mine.exists()  # added by path: never deleted unless asked
    gone = json.loads(run_cli(env, "models", "rm", "dropped", "--json").stdout)
    assert gone == {"removed": "dropped", "deleted_files": [str(folder_model)]}
    assert not folder_model.exists()
    assert json.loads(run_cli(env, "models", "list", "--json").stdout) == []


def test_recommend_follows_the_seed_tiers(tmp_path):
    env = cli_env(tmp_path)
    for ram, vram, size in [(2, 0, "0.8B"), (4, 0, "2B"), (16, 6, "4B"), (32, 8, "9B")]:
        result = run_cli(env, "models", "recommend", "--ram", str(ram), "--vram", str(vram))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"recommended: Qwen 3.5 {size} "), result.stdout
        assert "why:" in result.stdout and "full-attention layers" in result.stdout
        assert "get it:  qwen-tui models pull qwen3.5:" in result.stdout
    data = json.loads(run_cli(env, "models", "recommend", "--ram", "32", "--vram", "8", "--json").stdout)
    assert data["recommended"]["name"] == "qwen3.5:9b" and data["recommended"]["memory_kind"] == "VRAM"
    assert data["recommended"]["needed_bytes"] <= data["recommended"]["memory_bytes"]
    nothing = run_cli(env, "models", "recommend", "--ram", "1", "--vram", "0")
    assert nothing.returncode == 1 and "no Qwen 3.5 size fits" in nothing.stdout and "--demo" in nothing.stdout


def test_recommend_on_this_machine_names_a_size_and_why(tmp_path):
    result = run_cli(cli_env(tmp_path), "models", "recommend")
    assert result.returncode in (0, 1)
    assert "why:" in result.stdout
    if result.returncode == 0:
        assert result.stdout.startswith("recommended: Qwen 3.5 ")
