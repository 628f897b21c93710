"""`qwen-tui models pull` end to end against a real HTTP server on 127.0.0.1 (HF_ENDPOINT).

The server speaks the Hub's download API and serves the tiny qwen35 GGUF; the client is the real
CLI in a subprocess, using huggingface_hub. Faults are real: a dropped connection, a killed
client, corrupted bytes, a full (tmpfs) disk, a folder we may not write to.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hub_helpers import (
    MMPROJ_BYTES,
    MMPROJ_FILE,
    MODEL_FILE,
    REPO,
    cli_env,
    make_hub,
    model_path,
    part_files,
    run_cli,
    sha256,
    start_cli,
)

TEN_MB = 10 * 1024 * 1024  # huggingface_hub writes in 10 MiB chunks: a resume starts at a multiple


@pytest.fixture
def hub(tiny_qwen35_path):
    with make_hub(tiny_qwen35_path) as hub:
        yield hub


def test_pull_preset_downloads_verifies_and_registers(hub, tiny_qwen35_path, tmp_path):
    env = cli_env(tmp_path, hub)
    result = run_cli(env, "models", "pull", "qwen3.5:0.8b")
    assert result.returncode == 0, result.stderr
    # progress bar on stderr, ending at 100% of the model's size
    assert MODEL_FILE in result.stderr and "100%" in result.stderr and "28.2M/28.2M" in result.stderr
    path = model_path(tmp_path)
    assert sha256(path) == sha256(tiny_qwen35_path)
    assert (path.parent / MMPROJ_FILE).read_bytes() == MMPROJ_BYTES
    assert not part_files(tmp_path / "data" / "models")
    assert "qwen-tui --model qwen3.5:0.8b" in result.stdout

    listed = json.loads(run_cli(env, "models", "list", "--json").stdout)
    assert [(m["name"], m["quant"], m["vision"], m["size"]) for m in listed] == [
        ("qwen3.5:0.8b", "Q4_K_M", True, tiny_qwen35_path.stat().st_size)]
    info = json.loads(run_cli(env, "models", "info", "qwen3.5:0.8b", "--json").stdout)
    assert info["architecture"] == "qwen35" and info["vision"] is True

    # a second pull finds both files in place and downloads nothing
    downloads = len(hub.gets(MODEL_FILE)) + len(hub.gets(MMPROJ_FILE))
    assert downloads == 2
    again = run_cli(env, "models", "pull", "qwen3.5:0.8b")
    assert again.returncode == 0 and again.stderr.count("already here") == 2
    assert len(hub.gets(MODEL_FILE)) + len(hub.gets(MMPROJ_FILE)) == downloads

    # rm deletes what pull downloaded, and the emptied repository folder
    removed = json.loads(run_cli(env, "models", "rm", "qwen3.5:0.8b", "--json").stdout)
    assert removed == {"removed": "qwen3.5:0.8b", "deleted_files": [str(path), str(path.parent / MMPROJ_FILE)]}
    assert not path.parent.exists()
    assert json.loads(run_cli(env, "models", "list", "--json").stdout) == []


def test_repo_and_quant_spec_picks_that_file(hub, tmp_path):
    env = cli_env(tmp_path, hub)
    result = run_cli(env, "models", "pull", f"{REPO}:q8_0", "--no-vision", "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert model["filename"] == "Qwen3.5-0.8B-Q8_0.gguf" and model["quant"] == "Q8_0" and model["mmproj"] is None
    assert Path(model["path"]).read_bytes().endswith(b"q8-copy")
    assert not hub.gets(MMPROJ_FILE)
    assert "%|" not in result.stderr  # --quiet: no bar


def test_dropped_connection_is_resumed_with_a_range_request(hub, tiny_qwen35_path, tmp_path):
    hub.drop_after[MODEL_FILE] = 15_000_000
    result = run_cli(cli_env(tmp_path, hub), "models", "pull", "qwen3.5:0.8b", "--no-vision")
    assert result.returncode == 0, result.stderr
    gets = hub.gets(MODEL_FILE)
    assert [g.range for g in gets] == [None, f"bytes={TEN_MB}-"]
    assert sha256(model_path(tmp_path)) == sha256(tiny_qwen35_path)


def _wait_for_part(models_dir: Path, at_least: int, proc: subprocess.Popen, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = part_files(models_dir)
        if parts and parts[0].stat().st_size >= at_least:
            return parts[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the download never got going")


def test_killed_pull_resumes_where_it_stopped(hub, tiny_qwen35_path, tmp_path):
    release = threading.Event()
    hub.pause_after[MODEL_FILE] = (12_000_000, release)
    env = cli_env(tmp_path, hub)
    proc = start_cli(env, "models", "pull", "qwen3.5:0.8b", "--no-vision")
    models = tmp_path / "data" / "models"
    part = _wait_for_part(models, TEN_MB, proc)
    assert not model_path(tmp_path).exists()  # the half file is not where the model is expected
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    release.set()
    assert part.stat().st_size == TEN_MB

    result = run_cli(env, "models", "pull", "qwen3.5:0.8b", "--no-vision")
    assert result.returncode == 0, result.stderr
    assert "resuming at 0.01 of 0.03 GB" in result.stderr
    assert [g.range for g in hub.gets(MODEL_FILE)] == [None, f"bytes={TEN_MB}-"]
    assert sha256(model_path(tmp_path)) == sha256(tiny_qwen35_path)
    assert not part_files(models)


def test_a_second_pull_of_the_same_file_waits_its_turn(hub, tiny_qwen35_path, tmp_path):
    release = threading.Event()
    hub.pause_after[MODEL_FILE] = (12_000_000, release)
    env = cli_env(tmp_path, hub)
    first = start_cli(env, "models", "pull", "qwen3.5:0.8b", "--no-vision")
    _wait_for_part(tmp_path / "data" / "models", TEN_MB, first)
    second = run_cli(env, "models", "pull", "qwen3.5:0.8b", "--no-vision")
    assert second.returncode == 1
    assert "another qwen-tui is already downloading Qwen3.5-0.8B-Q4_K_M.gguf" in second.stderr
    release.set()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert sha256(model_path(tmp_path)) == sha256(tiny_qwen35_path)


def test_corrupt_download_is_deleted_with_a_clear_error(hub, tmp_path):
    hub.corrupt.add(MODEL_FILE)
    env = cli_env(tmp_path, hub)
    result = run_cli(env, "models", "pull", "qwen3.5:0.8b")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("qwen-tui: error: Qwen3.5-0.8B-Q4_K_M.gguf is corrupt: its sha256 is")
    assert "the download was deleted" in error and "Traceback" not in result.stderr
    assert not model_path(tmp_path).exists()
    assert not part_files(tmp_path / "data" / "models")
    assert json.loads(run_cli(env, "models", "list", "--json").stdout) == []


def test_unknown_repo_quant_and_preset_are_one_line_errors(hub, tmp_path):
    env = cli_env(tmp_path, hub)
    cases = [
        (["unsloth/nope-GGUF"], 1, "no repository unsloth/nope-GGUF on"),
        ([f"{REPO}:Q2_K"], 1, f"{REPO} has no Q2_K GGUF; it has: Q4_K_M, Q8_0"),
        (["qwen3.5:70b"], 2, "unknown preset 'qwen3.5:70b'"),
        (["not a repo"], 2, "is not a model to pull"),
    ]
    for args, code, message in cases:
        result = run_cli(env, "models", "pull", *args)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_offline_pull_points_to_demo_and_model_path(tmp_path):
    result = run_cli(cli_env(tmp_path, endpoint="http://127.0.0.1:9"), "models", "pull", "qwen3.5:4b")
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in result.stderr and "--demo" in result.stderr
    assert "--model PATH" in result.stderr and "Traceback" not in result.stderr


# -- disk full and permissions: real filesystems ----------------------------------------------

def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True) if shutil.which("mount") else None
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip() if done else 'no mount'}")


@pytest.fixture
def small_disk(tmp_path):
    mounts: list[Path] = []

    def make(size: str) -> Path:
        folder = tmp_path / f"disk-{len(mounts)}"
        _tmpfs(folder, size)
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _config_models_dir(home: Path, folder: Path) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(f'[models]\ndir = "{folder}"\n')


def test_too_little_disk_space_is_refused_before_downloading(hub, tmp_path, small_disk):
    disk = small_disk("16m")
    _config_models_dir(tmp_path, disk)
    result = run_cli(cli_env(tmp_path, hub), "models", "pull", "qwen3.5:0.8b")
    assert result.returncode == 1
    assert f"not enough disk space in {disk}/.incomplete: the download needs 0.03 GB" in result.stderr
    assert not hub.gets(MODEL_FILE)
    assert not (disk / REPO / MODEL_FILE).exists()


def test_disk_filling_up_mid_download_keeps_the_part_for_a_resume(hub, tiny_qwen35_path, tmp_path, small_disk):
    disk = small_disk("40m")
    _config_models_dir(tmp_path, disk)
    release = threading.Event()
    hub.pause_after[MODEL_FILE] = (12_000_000, release)
    env = cli_env(tmp_path, hub)
    proc = start_cli(env, "models", "pull", "qwen3.5:0.8b", "--no-vision")
    _wait_for_part(disk, TEN_MB, proc)
    filler = disk / "filler.bin"
    with filler.open("wb") as f:  # something else fills the disk
        try:
            while True:
                f.write(b"\0" * 1024 * 1024)
                f.flush()
        except OSError:
            pass
    release.set()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "the disk is full" in err and "run the same pull again to resume" in err and "Traceback" not in err
    assert not (disk / REPO / MODEL_FILE).exists()
    assert part_files(disk)  # kept

    filler.unlink()
    result = run_cli(env, "models", "pull", "qwen3.5:0.8b", "--no-vision")
    assert result.returncode == 0, result.stderr
    assert hub.gets(MODEL_FILE)[-1].range is not None and hub.gets(MODEL_FILE)[-1].range != "bytes=0-"
    assert sha256(disk / REPO / MODEL_FILE) == sha256(tiny_qwen35_path)


def test_models_folder_we_may_not_write_to(hub, tmp_path, small_disk):
    """chmod 0o500 as a user; root ignores file modes, so as root the folder is a read-only mount."""
    if os.geteuid() == 0:
        models = small_disk("1m")
        remount = subprocess.run(["mount", "-o", "remount,ro", str(models)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        expected = "read-only file system"
    else:
        models = tmp_path / "models"
        models.mkdir()
        models.chmod(0o500)
        expected = "permission denied"
    _config_models_dir(tmp_path, models)
    try:
        result = run_cli(cli_env(tmp_path, hub), "models", "pull", "qwen3.5:0.8b")
    finally:
        if os.geteuid() != 0:
            models.chmod(0o700)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"qwen-tui: error: cannot write to {models}") and expected in line
    assert "[models] dir" in line and "Traceback" not in result.stderr
    assert not hub.gets(MODEL_FILE)
