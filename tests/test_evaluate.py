"""`dancenet evaluate` / `evaluate-video` and the report, end to end on tiny synthetic data."""

import json
import re

import av
import numpy as np
import pytest

import dancenet
from dancenet.cli import main
from dancenet.dataset import Dataset, DatasetWriter
from dancenet.errors import DancenetError
from dancenet.evaluate import suite
from dancenet.evaluate.report import write_report
from tests.evaluate_fixtures import dancer_video

HEIGHT, WIDTH, FPS = 48, 80, 20.0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluate") / "reference"
    with DatasetWriter(path, HEIGHT, WIDTH, FPS) as writer:
        for seed in range(3):
            writer.add_clip(f"take{seed}", "synthetic", "synthetic",
                            dancer_video(100, HEIGHT, WIDTH, seed=seed, fps=FPS), FPS)
    return Dataset(path)


def write_video(path, frames, scale=1, fps=FPS):
    """Silhouettes as an H.264 mp4, white on black, upsampled by ``scale``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = frames.shape[2] * scale, frames.shape[1] * scale
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            image = (frame != 0).repeat(scale, 0).repeat(scale, 1).astype(np.uint8) * 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.stack([image] * 3, -1), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def assert_self_contained(page):
    from dancenet.evaluate.report import PLOTS

    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(source.startswith("data:") for source in sources)
    assert sum(source.startswith("data:image/png;base64,") for source in sources) >= len(PLOTS)
    assert "href=" not in page and "<link" not in page and "@import" not in page


def test_reference_scores_itself_well_and_shuffled_badly(reference, tmp_path):
    real = reference.clip_frames(reference.clips[0])
    shuffled = real[np.random.default_rng(0).permutation(len(real))]
    evaluation = suite.evaluate_videos({"real": real, "shuffled": shuffled}, suite.make_reference(reference))
    real_sample, shuffled_sample = evaluation.metrics["samples"]
    assert real_sample["memorisation_mean_best_iou"] == pytest.approx(1.0)
    assert real_sample["freeze_ratio"] == 0 and real_sample["artifact_ratio"] == 0
    assert shuffled_sample["frechet_distance"] > 5 * real_sample["frechet_distance"]
    assert shuffled_sample["motion_energy"]["mean"] > 3 * evaluation.metrics["reference_level"]["motion_energy"]["mean"]
    assert evaluation.metrics["summary"]["frechet_real_vs_real"] > 0
    out = write_report(evaluation, tmp_path / "report")
    assert json.loads((out / "metrics.json").read_text())["samples"][1]["name"] == "shuffled"
    assert_self_contained((out / "index.html").read_text())


def model_file(kind, val_clips):
    """The JSON half of a model file (dancenet.checkpoint's format) recording held-out clips."""
    return {"format": "dancenet-model", "version": 2, "kind": kind, "config": {},
            "metadata": {"val_clips": val_clips}}


def test_held_out_clips_come_from_the_run(reference, tmp_path):
    (tmp_path / "vae.json").write_text(json.dumps(model_file("vae", ["take1"])))
    names = suite.validation_clips(tmp_path)
    held_out = suite.make_reference(reference, names)
    assert names == ["take1"] and held_out.role == "held-out clips"
    assert [clip.name for clip in held_out.clips] == ["take1"]
    assert [clip.name for clip in held_out.training_clips] == ["take0", "take2"]
    assert suite.make_reference(reference, None).role == "whole dataset"


def test_a_held_out_take_sets_the_real_level_of_unlike_poses(reference):
    """Against held-out takes, real dance's share of frames unlike any training pose is measured on
    the held-out take itself: the take scored as a video gives the same share."""
    held_out = suite.make_reference(reference, ["take1"])
    take = reference.clip_frames(reference.clip("take1"))
    smeared = take.copy()
    smeared[::4] = False
    smeared[::4, 28:34, 8:72] = True  # every fourth frame a body smeared into a bar
    evaluation = suite.evaluate_videos({"take": take, "smeared": smeared}, held_out)
    real, samples = evaluation.metrics["reference_level"]["unlike_frame_ratio"], evaluation.metrics["samples"]
    assert samples[0]["unlike_frame_ratio"] == pytest.approx(real)
    assert samples[1]["unlike_frame_ratio"] == pytest.approx(0.25 + 0.75 * real, abs=0.02)


def test_evaluate_video_cli_end_to_end(reference, tmp_path, capsys):
    video = write_video(tmp_path / "dance.mp4", dancer_video(90, HEIGHT, WIDTH, seed=7, fps=FPS), scale=2)
    out = tmp_path / "report"
    assert main(["evaluate-video", str(video), "--reference", str(reference.path), "-o", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    assert "resized" in captured.err and "160x96" in captured.err
    assert "frechet_distance" in captured.out
    assert "worst window: loop_ratio" in captured.out and "worst window: motion_energy_over_real" in captured.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"][0]["frames"] == 90
    assert metrics["samples"][0]["artifact_ratio"] < 0.01
    assert metrics["settings"]["worst_window_seconds"] == 10
    assert metrics["summary"]["worst_window"]["loop_ratio"]["video"] == "dance.mp4"
    page = (out / "index.html").read_text()
    assert_self_contained(page)
    assert "Worst 10 s window" in page and "motion energy / real mean" in page


def test_evaluate_cli_with_a_stand_in_model(reference, tmp_path, monkeypatch, capsys):
    class StandIn:
        noise_correlation, component_correlation = 0.0, 0.6
        retries = 7

        def generate(self, seconds, seed, temperature, sigma_temperature):
            return dancer_video(int(seconds * FPS), HEIGHT, WIDTH, seed=10 + seed, fps=FPS).astype(np.uint8) * 255

        def temperatures(self, temperature, sigma_temperature):
            return temperature or 1.0, sigma_temperature or 1.0

    run = tmp_path / "run"
    run.mkdir()
    (run / "motion.json").write_text(json.dumps(model_file("motion", ["take2"])))
    monkeypatch.setattr(dancenet, "load", lambda path, motion_name="motion": StandIn())
    out = tmp_path / "report"
    assert main(["evaluate", str(run), "--reference", str(reference.path), "--seconds", "3", "--samples", "2",
                 "-o", str(out), "-q", "--retries", "2", "--component-correlation", "0.3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"]["retries"] == 2  # the redraws the dances were generated with
    assert metrics["source"]["component_correlation"] == 0.3
    assert metrics["reference"]["role"] == "held-out clips" and metrics["reference"]["clips"] == ["take2"]
    assert [sample["name"] for sample in metrics["samples"]] == ["seed 0", "seed 1"]
    assert metrics["summary"]["diversity"] > 0.2
    assert metrics["summary"]["reconstruction_iou"] is None  # no VAE in this run
    assert "not available" in capsys.readouterr().err


def test_bad_inputs(reference, tmp_path, capsys):
    out = tmp_path / "report"
    arguments = ["--reference", str(reference.path), "-o", str(out)]
    assert main(["evaluate-video", str(tmp_path / "missing.mp4")] + arguments) == 2
    assert "missing.mp4: no such file" in capsys.readouterr().err
    black = write_video(tmp_path / "black.mp4", np.zeros((40, HEIGHT, WIDTH), dtype=bool))
    assert main(["evaluate-video", str(black)] + arguments) == 2
    assert "no dancer" in capsys.readouterr().err
    video = write_video(tmp_path / "dance.mp4", dancer_video(60, HEIGHT, WIDTH, fps=FPS))
    assert main(["evaluate-video", str(video), "--reference", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert "no such dataset" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--reference", str(reference.path), "-o", str(out), "--retries", "-1"]) == 2
    assert "--retries -1: must be a whole number from 0 to 100" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("keep me")
    assert main(["evaluate-video", str(video), "--reference", str(reference.path), "-o", str(busy)]) == 2
    assert "dancenet did not write (thesis.txt)" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--seconds", "0"] + arguments) == 2
    assert "--seconds" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in busy.iterdir()] == ["thesis.txt"]


def test_video_without_frames_is_a_clear_error(reference, tmp_path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height = WIDTH, HEIGHT
    with pytest.raises(DancenetError, match="empty.mp4"):
        suite.read_video(path, HEIGHT, WIDTH, FPS)


def test_reference_without_long_clips_is_a_clear_error(tmp_path):
    path = tmp_path / "short"
    with DatasetWriter(path, HEIGHT, WIDTH, FPS) as writer:
        writer.add_clip("blink", "synthetic", "synthetic", dancer_video(8, HEIGHT, WIDTH, fps=FPS), FPS)
    video = dancer_video(60, HEIGHT, WIDTH, fps=FPS)
    with pytest.raises(DancenetError, match="long enough"):
        suite.evaluate_videos({"video": video}, suite.make_reference(Dataset(path)))


def test_video_of_another_size_or_too_short_is_refused(reference):
    with pytest.raises(DancenetError, match="do not match"):
        suite.evaluate_videos({"video": np.zeros((60, 10, 10), bool)}, suite.make_reference(reference))
    with pytest.raises(DancenetError, match="too short"):
        suite.evaluate_videos({"video": dancer_video(5, HEIGHT, WIDTH)}, suite.make_reference(reference))


def test_worst_window_finds_the_burst_that_the_mean_hides(reference):
    from dancenet.commands.evaluate import summary_table
    from dancenet.evaluate import metrics

    seconds = lambda start, stop: slice(int(start * FPS), int(stop * FPS))  # noqa: E731
    burst = dancer_video(int(50 * FPS), HEIGHT, WIDTH, seed=5, fps=FPS)
    burst[seconds(10, 20)] = burst[seconds(0, 10)]  # 10-20 s repeats 0-10 s
    burst[seconds(30, 40), 20:24, 0:3] = True       # a speck away from the dancer for 30-40 s
    burst[seconds(40, 50)] = False
    burst[seconds(40, 50), 28:34, 8:72] = True  # 40-50 s: the body smeared into one bar, in one piece
    short = dancer_video(int(6 * FPS), HEIGHT, WIDTH, seed=6, fps=FPS)
    evaluation = suite.evaluate_videos({"short": short, "burst": burst}, suite.make_reference(reference))
    summary, samples = evaluation.metrics["summary"], evaluation.metrics["samples"]
    worst = summary["worst_window"]

    assert worst["artifact_ratio"]["video"] == "burst" and worst["artifact_ratio"]["start_seconds"] == 30
    assert worst["artifact_ratio"]["value"] == pytest.approx(metrics.artifact_analysis(burst[seconds(30, 40)]).ratio)
    assert worst["artifact_ratio"]["value"] > 0.02
    assert samples[1]["artifact_ratio"] < worst["artifact_ratio"]["value"] / 3  # the mean stays low
    # ... and the speck is in a fifth of the burst video's frames, none of the short one's or real dance's
    assert samples[1]["stray_frame_ratio"] == pytest.approx(0.2, abs=0.5 / len(burst))
    assert samples[0]["stray_frame_ratio"] == 0 and evaluation.metrics["reference_level"]["stray_frame_ratio"] == 0
    assert summary["stray_frame_ratio"] == pytest.approx(0.2 * len(burst) / (len(burst) + len(short)), abs=1e-3)
    assert worst["loop_ratio"]["video"] == "burst" and worst["loop_ratio"]["start_seconds"] == 10
    assert worst["loop_ratio"]["value"] == pytest.approx(1.0) and summary["loop_ratio"] < 0.3
    assert worst["artifact_ratio"]["seconds"] == worst["loop_ratio"]["seconds"] == 10
    assert worst["unlike_frame_ratio"]["video"] == "burst" and worst["unlike_frame_ratio"]["start_seconds"] == 40
    assert evaluation.metrics["reference_level"]["unlike_frame_ratio"] is None  # no held-out take to measure
    assert worst["unlike_frame_ratio"]["value"] == 1 and samples[1]["unlike_frame_ratio"] == pytest.approx(0.2)
    assert samples[0]["unlike_frame_ratio"] == 0  # the short video dances poses of the takes
    energy, real_energy = worst["motion_energy_over_real"], evaluation.metrics["reference_level"]["motion_energy"]
    assert energy["value"] == pytest.approx(energy["mean"] / real_energy["mean"])

    # A video shorter than the window is one window: its worst is its whole-video value.
    for key, entry in samples[0]["worst_window"].items():
        assert (entry["start_seconds"], entry["seconds"]) == (0, 6)
        if key != "motion_energy_over_real":
            assert entry["value"] == pytest.approx(samples[0][key])
    real = evaluation.metrics["reference_level"]["worst_window"]
    assert real["loop_ratio"]["clip"] in {"take0", "take1", "take2"} and real["artifact_ratio"]["value"] == 0
    table = summary_table(summary, evaluation.metrics["reference_level"])
    assert re.search(r"worst window: artifact_ratio .*\(burst 30-40 s\)", table)
    assert re.search(r"worst window: loop_ratio .*\(burst 10-20 s\)", table)
    assert re.search(r"worst window: unlike_frame_ratio .*\(burst 40-50 s\)", table)


def test_a_frozen_worst_energy_window_points_at_where_it_is():
    from dancenet.commands.evaluate import worst_cell

    frozen = {"value": 0.0, "start_seconds": 3.0, "seconds": 10.0, "video": "seed 1"}
    assert worst_cell(frozen, "motion_energy_over_real") == "0 (seed 1 3-13 s)"
    assert worst_cell(frozen, "loop_ratio") == "0"  # no loop anywhere: nothing to point at
