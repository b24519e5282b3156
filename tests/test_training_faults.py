"""Faults during training: kill -9 mid-run and resume, for both stages, through the real CLI."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dancenet.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_motion import write_latents  # noqa: E402
from vae_helpers import make_dataset  # noqa: E402

EVERY = 3  # checkpoint interval in steps


def start(arguments):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "THP_MEM_ALLOC_ENABLE": "1"}
    return subprocess.Popen([sys.executable, "-m", "dancenet.cli", *map(str, arguments), "--quiet"],
                            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_after_checkpoint(process, checkpoint: Path, step: int, timeout: float = 60) -> int:
    """kill -9 once the run's checkpoint holds at least ``step`` steps -> the checkpoint's step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.is_file() and load_checkpoint(checkpoint)["step"] >= step:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    return load_checkpoint(checkpoint)["step"]


def finish(arguments) -> subprocess.CompletedProcess:
    process = start(arguments)
    _, error = process.communicate(timeout=120)
    return subprocess.CompletedProcess(arguments, process.returncode, "", error.decode())


def leftovers(run: Path) -> list[Path]:
    return [path for path in run.rglob("*") if ".partial" in path.name]


def last_logged_step(metrics: Path) -> int:
    rows = metrics.read_text().splitlines()[1:] if metrics.is_file() else []
    return int(rows[-1].split(",")[1]) if rows else 0


@pytest.mark.parametrize("stage", ["vae", "motion"])
def test_kill_9_then_resume_loses_at_most_one_checkpoint_interval(stage, tmp_path):
    if stage == "vae":  # 5 steps of 16 frames an epoch
        data = make_dataset(tmp_path / "data", clips=3, frames=40)
        recipe = "model: {channels: [8, 16], latent_size: 8}\ntraining: {batch_size: 16, epochs: 12}\n"
        command = ["train", "vae", data, "--out", "{run}"]
    else:  # 5 windows of 4 x 16 frames an epoch
        data = write_latents(tmp_path / "latents.npz")
        recipe = ("model: {hidden_size: 16, num_layers: 1, num_mixtures: 2}\n"
                  "training: {batch_size: 4, sequence_length: 16, epochs: 12}\n")
        command = ["train", "motion", "{run}"]
    (tmp_path / "tiny.yaml").write_text(recipe)

    def run_folder(name):
        folder = tmp_path / name
        if stage == "motion":
            folder.mkdir()
            (folder / "latents.npz").write_bytes(data.read_bytes())
        return [str(part).replace("{run}", str(folder)) for part in command]

    whole = finish([*run_folder("whole"), "--config", tmp_path / "tiny.yaml", "--checkpoint-every", EVERY])
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = run_folder("killed")
    train = tmp_path / "killed" / f"{stage}-train"
    process = start([*killed, "--config", tmp_path / "tiny.yaml", "--checkpoint-every", EVERY])
    saved = kill_after_checkpoint(process, train / "checkpoint.pt", 2 * EVERY)
    # the checkpoint is at most one interval behind the last step the run had logged
    assert saved % EVERY == 0 and saved >= last_logged_step(train / "metrics.csv") - EVERY
    resumed = finish([*killed, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(train / "checkpoint.pt")
    assert final["reason"] == "finished" and final["step"] == 60
    # resuming replays exactly: the weights equal those of the run that was never killed
    weights = f"{stage}.safetensors"
    assert (tmp_path / "killed" / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes()
    assert not leftovers(tmp_path / "killed")
