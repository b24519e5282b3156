"""`dancenet app`: the page's logic without a browser (checks of footage, training status, runs)."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_fixtures import dancer_video  # noqa: E402


def write_video(path, masks, fps=30):
    """White-on-black silhouettes as an H.264 mp4."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = masks.shape[1:]
        stream.pix_fmt = "yuv420p"
        for mask in masks:
            frame = np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def dancer_mp4(path, seconds=6.0):
    return write_video(path, dancer_video(int(30 * seconds), height=120, width=208))


def test_check_upload_shows_the_silhouettes(tmp_path):
    from PIL import Image

    from dancenet.app import check_upload
    from dancenet.dataset import Dataset

    dataset, description, sheet = check_upload(str(dancer_mp4(tmp_path / "me.mp4")), "", tmp_path / "work")
    assert len(Dataset(dataset)) == 180 and "6 s of dance" in description
    assert "Dancer found by" in description
    image = np.asarray(Image.open(sheet).convert("L"))
    assert image.shape[1] > 8 * 208 and image.max() == 255  # eight tiles a row, dancer white


@pytest.mark.parametrize("kind,message", [
    ("text", "notes.mp4: cannot be read as a video"),
    ("short", "holds only 2.0 s of dance"),
    ("empty", "no dancer found"),
    ("missing", "no such file or folder"),
    ("nothing", "upload a video"),
])
def test_bad_uploads_are_clear_messages(tmp_path, kind, message):
    from dancenet.app import check_upload
    from dancenet.errors import DancenetError

    upload, server_path = None, ""
    if kind == "text":
        upload = tmp_path / "notes.mp4"
        upload.write_text("these are my notes, not a video\n" * 50)
    elif kind == "short":
        upload = dancer_mp4(tmp_path / "short.mp4", seconds=2)
    elif kind == "empty":
        upload = write_video(tmp_path / "empty.mp4", np.zeros((180, 120, 208), bool))
    elif kind == "missing":
        server_path = str(tmp_path / "nowhere.bvh")
    with pytest.raises(DancenetError, match=message):
        check_upload(None if upload is None else str(upload), server_path, tmp_path / "work")
    assert not list((tmp_path / "work").glob("check-*"))  # nothing half-made is left


def test_too_large_upload_is_refused_before_reading(tmp_path, monkeypatch):
    from dancenet import app
    from dancenet.errors import DancenetError

    monkeypatch.setattr(app, "MAX_UPLOAD_MB", 0.001)
    path = dancer_mp4(tmp_path / "big.mp4")
    with pytest.raises(DancenetError, match="too large"):
        app.check_upload(str(path), "", tmp_path / "work")


def test_trainer_runs_one_training_at_a_time_and_cancels(tmp_path):
    from dancenet.app import Trainer, progress_markdown
    from dancenet.app import check_upload
    from dancenet.errors import DancenetError

    dataset, _, _ = check_upload(str(dancer_mp4(tmp_path / "me.mp4", seconds=8)), "", tmp_path / "work")
    trainer = Trainer(tmp_path / "runs", tmp_path / "work")
    assert progress_markdown(trainer.status()) == "No training yet."
    with pytest.raises(DancenetError, match="name"):
        trainer.start(dataset, "../escape", 1)
    run = trainer.start(dataset, "first", 1)
    try:
        with pytest.raises(DancenetError, match="one training at a time"):
            trainer.start(dataset, "second", 1)
        deadline = time.monotonic() + 120
        while trainer.status()["progress"].get("stage") not in ("vae", "encode", "motion"):
            assert time.monotonic() < deadline and trainer.busy(), trainer.status()
            time.sleep(0.5)
        assert "learning her shapes" in progress_markdown(trainer.status())
    finally:
        trainer.stop_and_wait(timeout=300)  # a busy machine is slow to save
    status = trainer.status()
    assert status["state"] == "cancelled" and "cancelled" in progress_markdown(status)
    assert (run / "pipeline.json").is_file()  # resumable
    assert not (tmp_path / "runs" / "second").exists()


def test_list_runs_offers_only_runs_that_can_dance(tmp_path):
    from dancenet.app import list_runs

    for name, files in (("done", ("vae.json", "motion.json")), ("half", ("vae.json",)),
                        (".hidden", ("vae.json", "motion.json"))):
        (tmp_path / name).mkdir()
        for file in files:
            (tmp_path / name / file).write_text("{}")
    assert list_runs(tmp_path) == [str(tmp_path / "done")]
    assert list_runs(tmp_path, "elsewhere/run") == ["elsewhere/run", str(tmp_path / "done")]
    assert list_runs(tmp_path / "absent") == []


def test_app_without_gradio_says_how_to_install(monkeypatch, capsys):
    import builtins

    from dancenet.cli import main

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert main(["app", "--port", "7999"]) == 2
    assert "pip install 'dancenet[app]'" in capsys.readouterr().err


def test_app_with_a_bad_run_is_one_line_before_serving(tmp_path, capsys):
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'dancenet[app]'")
    from dancenet.cli import main

    assert main(["app", str(tmp_path / "nope"), "--port", "7998", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dancenet: error:") and "nope" in error and "\n" not in error


def test_start_from_offers_the_real_clips_of_the_model():
    import dancenet
    from dancenet.app import prime_choices

    dancer = dancenet.load()
    choices = prime_choices(dancer)
    assert "61_01" in choices  # the bundled prime.npz holds a few seconds of each salsa take
    frames = dancer.generate(seconds=1, seed=0, prime=choices[0])
    assert frames.shape[1:] == (dancer.height, dancer.width) and frames.any()


@pytest.mark.parametrize("server_paths", [True, False])
def test_server_paths_are_offered_only_on_this_machine(tmp_path, server_paths):
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'dancenet[app]'")
    from dancenet.app import build_app

    page = build_app(runs=tmp_path / "runs", work=tmp_path / "work", server_paths=server_paths)
    path_box = [block for block in page.blocks.values()
                if getattr(block, "elem_id", None) == "train-path"]
    assert len(path_box) == 1 and path_box[0].visible is server_paths
