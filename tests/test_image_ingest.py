"""Folders of images (dancenet.ingest.frames): natural order, the 2018 imgs/ layout, bad folders."""

import numpy as np
import pytest
from PIL import Image

from dancenet.errors import DancenetError
from dancenet.ingest import PrepareOptions, prepare

OPTIONS = PrepareOptions(height=24, width=32, segment="threshold", quiet=True)


def bar_frame(position, size=(64, 48)):
    """A white bar on black whose column tells which frame it is."""
    frame = np.zeros((size[1], size[0]), np.uint8)
    frame[8:40, 4 * position:4 * position + 6] = 255
    return frame


def save(folder, name, frame):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(folder / name)


def bar_columns(dataset):
    """The leftmost dancer column of each frame."""
    return [int(np.flatnonzero(frame.any(axis=0))[0]) for frame in dataset.frames(0, len(dataset))]


def test_numeric_order_in_the_2018_layout(tmp_path):
    root = tmp_path / "salsa"
    for number in (1, 2, 10, 3):  # lexical order would be 1, 10, 2, 3
        save(root / "imgs", f"{number}.jpg", bar_frame(number))
    dataset = prepare([root], tmp_path / "data", OPTIONS)
    assert dataset.clips[0].name == "salsa" and len(dataset) == 4
    columns = bar_columns(dataset)
    assert columns == sorted(columns) and len(set(columns)) == 4  # 1, 2, 3, 10: moving right


def test_source_fps_resamples(tmp_path):
    for number in range(1, 9):
        save(tmp_path / "frames", f"frame_{number:02d}.png", bar_frame(number))
    options = PrepareOptions(height=24, width=32, fps=30, source_fps=60, segment="auto", quiet=True)
    dataset = prepare([tmp_path / "frames"], tmp_path / "data", options)
    assert len(dataset) == 4 and dataset.clips[0].source_fps == 60
    assert dataset.clips[0].segmentation == "threshold"  # auto: black borders
    everything = prepare([tmp_path / "frames"], tmp_path / "all", OPTIONS)
    assert bar_columns(dataset) == bar_columns(everything)[::2]


def refused(tmp_path, source):
    with pytest.raises(DancenetError) as caught:
        prepare([source], tmp_path / "data", OPTIONS)
    assert not (tmp_path / "data").exists()
    return str(caught.value)


def test_mixed_sizes_name_the_file(tmp_path):
    save(tmp_path / "imgs", "1.png", bar_frame(1))
    save(tmp_path / "imgs", "2.png", bar_frame(2, size=(80, 48)))
    message = refused(tmp_path, tmp_path / "imgs")
    assert "2.png" in message and "80x48" in message


def test_empty_folder(tmp_path):
    (tmp_path / "clip" / "imgs").mkdir(parents=True)
    assert "no images" in refused(tmp_path, tmp_path / "clip")
    (tmp_path / "bare").mkdir()
    assert str(tmp_path / "bare") in refused(tmp_path, tmp_path / "bare")


def test_unreadable_image(tmp_path):
    save(tmp_path / "imgs", "1.png", bar_frame(1))
    (tmp_path / "imgs" / "2.png").write_bytes(b"not a png at all")
    assert "2.png" in refused(tmp_path, tmp_path / "imgs")
