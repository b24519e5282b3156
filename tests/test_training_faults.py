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


@pytest.mark.parametrize("stage", ["vae", "motion"])
def test_kill_9_then_resume_loses_at_most_one_checkpoint_interval(stage, tmp_path):
    run = tmp_path / "run"
    if stage == "vae":
        data = make_dataset(tmp_path / "data", clips=3, frames=40)  # 5 steps of 16 frames an epoch
        recipe = tmp_path / "tiny.yaml"
        recipe.write_text("model: {channels: [8, 16], latent_size: 8}\ntraining: {batch_size: 16}\n")
        command = ["train", "vae", data, "--out", run, "--config", recipe]
    else:
        run.mkdir()
        write_latents(run / "latents.npz")
        recipe = tmp_path / "tiny.yaml"
        recipe.write_text("model: {hidden_size: 16, num_layers: 1, num_mixtures: 2}\n"
                          "training: {batch_size: 4, sequence_length: 16, epochs: 1000}\n")
        command = ["train", "motion", run, "--config", recipe]
    checkpoint = run / f"{stage}-train" / "checkpoint.pt"
    process = start([*command, "--epochs", "1000", "--checkpoint-every", EVERY])
    saved = kill_after_checkpoint(process, checkpoint, 2 * EVERY)
    assert saved % EVERY == 0
    # the killed run's checkpoint is what --resume continues from: nothing before it is lost
    resumed_epochs = load_checkpoint(checkpoint)["epoch"] + 2
    resumed = finish([*command[:-2], "--resume", "--epochs", resumed_epochs])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(checkpoint)
    assert final["step"] > saved and final["reason"] == "finished"
    assert not leftovers(run)
