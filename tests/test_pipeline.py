"""`dancenet train SOURCE... --out RUN`: the one-command pipeline, its resume and its errors."""

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from vae_helpers import make_dataset  # noqa: E402


def main(argv):
    from dancenet.cli import main as cli_main

    return cli_main([str(part) for part in argv])


@pytest.fixture
def short_pipeline(monkeypatch):
    """Pieces of 2 s: the real stages on tiny data."""
    from dancenet import pipeline

    monkeypatch.setattr(pipeline, "SEGMENT_SECONDS", 2.0)
    monkeypatch.setattr(pipeline, "MIN_MOTION_SECONDS", 2.0)
    return pipeline


def test_plan_budget_splits_the_minutes():
    from dancenet.pipeline import VAE_SHARE, plan_budget

    budget = plan_budget(20)
    assert budget["vae"] + budget["motion"] == pytest.approx(1200)
    assert budget["vae"] == pytest.approx(1200 * VAE_SHARE)
    assert plan_budget(0.1)["motion"] <= 3.0 + 1e-9  # never more than half of a tiny budget
    with pytest.raises(Exception, match="minutes"):
        plan_budget(0)


def test_time_left_counts_the_motion_models_final_check_after_its_budget(tmp_path):
    from dancenet.pipeline import AFTER_BUDGET_SECONDS, ESTIMATED_SECONDS, STAGES, ProgressReporter, plan_budget

    state = {"minutes": 20.0, "budget": plan_budget(20),
             "stages": {stage: {"status": "done", "seconds": 10.0} for stage in STAGES}}
    state["stages"]["motion"] = {"status": "running", "seconds": state["budget"]["motion"]}
    state["stages"]["evaluate"] = {"status": "pending", "seconds": 0.0}
    reporter = ProgressReporter(tmp_path, state)
    reporter.stage = "motion"
    left = reporter.snapshot()["seconds_left"]  # the budget is spent; the final check and evaluation are not
    assert left == pytest.approx(AFTER_BUDGET_SECONDS["motion"] + ESTIMATED_SECONDS["evaluate"], abs=1.0)
    assert AFTER_BUDGET_SECONDS["motion"] >= 60


def test_time_left_expects_preparing_a_video_to_take_as_long_as_its_length(tmp_path):
    from dancenet.pipeline import (AFTER_BUDGET_SECONDS, ESTIMATED_SECONDS, PREPARE_SECONDS_PER_VIDEO_SECOND,
                                   ProgressReporter, _new_state, _prepare_estimate)
    from tests.synthetic_footage import write_video

    video = write_video(tmp_path / "four.mp4", np.zeros((120, 48, 64, 3), np.uint8))  # 4 s at 30 fps
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    dataset = make_dataset(tmp_path / "data", clips=1, frames=30, fps=30.0)
    base = ESTIMATED_SECONDS["prepare"]
    assert _prepare_estimate([video]) == pytest.approx(base + 4 * PREPARE_SECONDS_PER_VIDEO_SECOND, abs=0.2)
    assert _prepare_estimate([video, video]) == pytest.approx(base + 8 * PREPARE_SECONDS_PER_VIDEO_SECOND, abs=0.4)
    assert _prepare_estimate([broken]) == _prepare_estimate([dataset]) == base
    state = _new_state([video], 20, None)  # a new run plans with it
    reporter = ProgressReporter(tmp_path, state)
    expected = (_prepare_estimate([video]) + sum(state["budget"].values()) + AFTER_BUDGET_SECONDS["motion"]
                + ESTIMATED_SECONDS["encode"] + ESTIMATED_SECONDS["evaluate"])
    assert reporter.snapshot()["seconds_left"] == pytest.approx(expected, abs=1.0)


def test_split_for_validation_cuts_few_clips_into_pieces(tmp_path, short_pipeline):
    from dancenet.dataset import Dataset

    source = Dataset(make_dataset(tmp_path / "one", clips=1, frames=130, fps=30.0))
    short_pipeline.split_for_validation(source, tmp_path / "cut")
    cut = Dataset(tmp_path / "cut")
    assert [clip.name for clip in cut.clips] == [f"take0.{index}" for index in range(1, 3)]
    assert np.array_equal(cut.frames(), source.frames())  # only the boundaries change
    many = Dataset(make_dataset(tmp_path / "many", clips=4, frames=130))
    short_pipeline.split_for_validation(many, tmp_path / "kept")
    assert len(Dataset(tmp_path / "kept").clips) == 4


def test_interrupt_then_resume_finishes_the_run(tmp_path, short_pipeline, capsys, monkeypatch):
    """Stop during the VAE (as the app's cancel and Ctrl-C do), then --resume to the end."""
    # a checkpoint within the VAE's first steps: on a loaded machine 100 steps could outlast the
    # VAE's share of the budget, and the stop would then come after the VAE had finished
    monkeypatch.setattr(short_pipeline, "VAE_CHECKPOINT_STEPS", 2)
    source = make_dataset(tmp_path / "data", clips=1, frames=240, fps=30.0)
    before = (source / "frames.bin").read_bytes()
    run = tmp_path / "run"
    stop, seen = threading.Event(), []

    def watch(values):
        seen.append(values)
        if values["stage"] == "vae" and (run / "vae-train" / "checkpoint.pt").is_file():
            stop.set()

    result = short_pipeline.train([source], run, minutes=0.4, progress=watch, stop=stop,
                                  evaluate_seconds=3, evaluate_samples=1)
    assert result.status == "interrupted" and result.stage == "vae"
    state = json.loads((run / "pipeline.json").read_text())
    assert state["stages"]["prepare"]["status"] == "done"
    assert state["stages"]["vae"]["status"] == "interrupted"
    assert json.loads((run / "progress.json").read_text())["status"] == "interrupted"
    assert {values["stage"] for values in seen} >= {"prepare", "vae"}
    prepared = (run / "data" / "manifest.json").stat().st_mtime_ns

    assert main(["train", source, "--out", run, "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"make a video: dancenet generate {run}" in printed
    state = json.loads((run / "pipeline.json").read_text())
    assert all(entry["status"] == "done" for entry in state["stages"].values())
    assert (run / "data" / "manifest.json").stat().st_mtime_ns == prepared  # not prepared again
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "finished" and progress["fraction"] == pytest.approx(1.0)
    assert progress["seconds_left"] == pytest.approx(0.0, abs=0.5)
    assert (run / "preview.png").is_file() and (run / "report" / "metrics.json").is_file()
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert "loop_ratio" in metrics["summary"] and "loop_ratio" in result_summary(printed)
    motion = json.loads((run / "motion.json").read_text())
    assert motion["metadata"]["val_clips"], "the cut pieces give the motion model a held-out piece"
    assert motion["config"]["frame_stride"] == 2, "8 s of dance: a short dataset's stride"
    assert (run / "motion.library.npz").is_file(), "the copy guard's training frames"
    assert (source / "frames.bin").read_bytes() == before  # the input is never modified

    from dancenet.app import list_runs, report_html, report_summary

    assert "loop_ratio" in report_summary(run) and "<iframe" in report_html(run)  # the Evaluate tab
    assert list_runs(tmp_path) == [str(run)]  # the Dance tab offers the finished run

    import dancenet

    frames = dancenet.load(run).generate(seconds=1, seed=0)
    assert frames.shape[1:] == (32, 48) and frames.any()


def result_summary(printed: str) -> str:
    return printed.split("make a video")[0]


def test_preview_shows_real_frames_above_reconstructions(tmp_path):
    from PIL import Image

    from dancenet.pipeline import write_preview

    dataset = make_dataset(tmp_path / "data", clips=2, frames=20)
    assert main(["train", "vae", dataset, "--out", tmp_path / "run", "--epochs", "1",
                 "--latent-size", "4", "--batch-size", "8", "--quiet"]) == 0
    out = write_preview(tmp_path / "run", dataset, tmp_path / "preview.png", count=4)
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape[0] > 2 * 32 and image.shape[1] > 4 * 48  # two rows of four tiles


@pytest.mark.parametrize("arguments,message", [
    (["train", "{tmp}/nothing.mp4", "--out", "{tmp}/run"], "nothing.mp4: no such file"),
    (["train", "{data}", "--out", "{tmp}/busy"], "already exists and is not empty"),
    (["train", "{data}", "--out", "{tmp}/busy", "--overwrite"], "dancenet did not write (mine.txt)"),
    (["train", "{data}", "--out", "{tmp}/busy", "--resume"], "holds no pipeline run to resume"),
    (["train", "{data}", "{data}", "--out", "{tmp}/run"], "must be the only SOURCE"),
    (["train", "{data}", "--out", "{tmp}/run", "--minutes", "-1"], "must be positive"),
    (["train", "{data}", "--out", "{tmp}/run", "--minutes", "1e308"], "at most"),
    (["train", "{data}", "--out", "{tmp}/run", "--resume", "--overwrite"], "choose one"),
    (["train", "{data}"], "--out"),
    (["train", "{data}", "--out", "{tmp}/run"], "holds only 0.3 s of dance"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, arguments, message):
    data = make_dataset(tmp_path / "data", clips=1, frames=10)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me")
    argv = [part.format(tmp=tmp_path, data=data) for part in arguments]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().split("\r")[-1]  # after the progress bar, if any
    assert error.startswith("dancenet: error:") and message in error and "\n" not in error
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep me"
    assert not (tmp_path / "run").exists()


def test_train_help_names_pipeline_and_stages(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--minutes" in text and "--resume" in text and "dancenet train vae" in text
    assert main(["train", "vae", "--help"]) == 0  # the single stages keep their own commands
    assert "DATASET" in capsys.readouterr().out
    assert main(["train", "motion", "--help"]) == 0


def test_footage_without_a_dancer_is_refused(tmp_path, capsys):
    from dancenet.dataset import DatasetWriter

    with DatasetWriter(tmp_path / "empty", 32, 48, 30.0) as writer:
        writer.add_clip("room", "synthetic", "background", np.zeros((300, 32, 48), np.uint8), 30.0)
    assert main(["train", tmp_path / "empty", "--out", tmp_path / "run", "--quiet"]) == 2
    assert "no dancer found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing half-made is left


def fake_run(path, *extra):
    """A folder as `dancenet train` leaves it (its state file and a VAE), plus ``extra`` files."""
    from dancenet.pipeline import FORMAT

    path.mkdir()
    (path / "pipeline.json").write_text(json.dumps({"format": FORMAT, "version": 1}))
    for name in ("vae.json", *extra):
        (path / name).write_text(f"{name} of the earlier run")
    return path


def test_overwrite_never_removes_a_users_file(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", clips=1, frames=240, fps=30.0)
    run = fake_run(tmp_path / "run", "my notes.txt")
    assert main(["train", data, "--out", run, "--overwrite", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dancenet: error:") and "my notes.txt" in error and "\n" not in error
    assert sorted(path.name for path in run.iterdir()) == ["my notes.txt", "pipeline.json", "vae.json"]


def test_overwrite_with_bad_footage_keeps_the_run_it_was_to_replace(tmp_path, capsys):
    short = make_dataset(tmp_path / "short", clips=1, frames=10)  # 0.3 s: refused after prepare
    run = fake_run(tmp_path / "run")
    assert main(["train", short, "--out", run, "--overwrite", "--quiet"]) == 2
    assert "holds only 0.3 s" in capsys.readouterr().err
    assert (run / "vae.json").read_text() == "vae.json of the earlier run"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "short"]  # nothing aside


def test_a_stage_can_be_retrained_inside_a_pipeline_run(tmp_path):
    """`dancenet train` keeps its dataset in RUN/data; `train vae RUN/data --out RUN` may write RUN."""
    run = tmp_path / "run"
    data = make_dataset(run / "data", clips=2, frames=20)
    assert main(["train", "vae", data, "--out", run, "--epochs", "1", "--latent-size", "4",
                 "--batch-size", "8", "--quiet"]) == 0
    assert (run / "vae.safetensors").is_file()
    assert main(["train", "vae", data, "--out", data, "--epochs", "1", "--quiet"]) == 2
