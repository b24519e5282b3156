"""The on-disk dataset: round trips, clip-bounded windows, atomic writes."""

import json

import numpy as np
import pytest

from dancenet.dataset import Dataset, DatasetWriter
from dancenet.errors import DancenetError


def random_masks(count, height, width, seed):
    return np.random.default_rng(seed).random((count, height, width)) > 0.7


def write_dataset(path, clips, height=12, width=21, fps=30):
    with DatasetWriter(path, height, width, fps) as writer:
        for name, masks in clips:
            writer.add_clip(name, f"{name}.mp4", "threshold", iter(masks), source_fps=25.0)
    return Dataset(path)


def test_frames_round_trip_with_width_not_multiple_of_8(tmp_path):
    first, second = random_masks(5, 12, 21, 0), random_masks(3, 12, 21, 1)
    dataset = write_dataset(tmp_path / "data", [("a", first), ("b", second)])
    assert len(dataset) == 8 and dataset.size == (12, 21)
    np.testing.assert_array_equal(dataset.frames(), np.concatenate([first, second]).astype(np.uint8))
    np.testing.assert_array_equal(dataset.frames_at([6, 1]), np.stack([second[1], first[1]]).astype(np.uint8))
    np.testing.assert_array_equal(dataset.clip_frames("b"), second.astype(np.uint8))


def test_manifest_round_trip(tmp_path):
    dataset = write_dataset(tmp_path / "data", [("a", random_masks(4, 12, 21, 0)), ("a", random_masks(2, 12, 21, 1))])
    assert [clip.name for clip in dataset.clips] == ["a", "a-2"]  # names made unique
    assert [(clip.start, clip.stop) for clip in dataset.clips] == [(0, 4), (4, 6)]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["fps"] == 30 and manifest["clips"][1]["source"] == "a.mp4"
    assert Dataset(tmp_path / "data").manifest_hash == dataset.manifest_hash


def test_windows_never_cross_clips(tmp_path):
    dataset = write_dataset(tmp_path / "data", [("a", random_masks(10, 12, 21, 0)),
                                                ("b", random_masks(3, 12, 21, 1)),
                                                ("c", random_masks(7, 12, 21, 2))])
    windows = dataset.windows(4, stride=1)
    for start, stop in windows:
        assert any(clip.start <= start and stop <= clip.stop for clip in dataset.clips)
    assert len(windows) == (10 - 3) + 0 + (7 - 3)


def test_split_by_whole_clips(tmp_path):
    dataset = write_dataset(tmp_path / "data", [(name, random_masks(2, 12, 21, i)) for i, name in enumerate("abcde")])
    train, validation = dataset.split_clips(2)
    assert len(validation) == 2 and not {c.name for c in train} & {c.name for c in validation}
    train, validation = dataset.split_clips(["c"])
    assert [c.name for c in validation] == ["c"] and len(train) == 4
    with pytest.raises(DancenetError):
        dataset.split_clips(5)


def test_failed_write_leaves_nothing(tmp_path):
    def exploding():
        yield np.zeros((12, 21), bool)
        raise DancenetError("broken.mp4: truncated")

    with pytest.raises(DancenetError):
        with DatasetWriter(tmp_path / "data", 12, 21, 30) as writer:
            writer.add_clip("a", "broken.mp4", "threshold", exploding(), 30)
    assert list(tmp_path.iterdir()) == []


def test_refuses_existing_dataset_unless_overwrite(tmp_path):
    write_dataset(tmp_path / "data", [("a", random_masks(2, 12, 21, 0))])
    with pytest.raises(DancenetError, match="--overwrite"):
        write_dataset(tmp_path / "data", [("b", random_masks(2, 12, 21, 0))])
    with DatasetWriter(tmp_path / "data", 12, 21, 30, overwrite=True) as writer:
        writer.add_clip("b", "b.mp4", "threshold", iter(random_masks(3, 12, 21, 0)), 30)
    assert [clip.name for clip in Dataset(tmp_path / "data").clips] == ["b"]


def test_truncated_frames_file_is_a_clear_error(tmp_path):
    write_dataset(tmp_path / "data", [("a", random_masks(4, 12, 21, 0))])
    frames = tmp_path / "data" / "frames.bin"
    frames.write_bytes(frames.read_bytes()[:-5])
    with pytest.raises(DancenetError, match="truncated"):
        Dataset(tmp_path / "data")


def test_not_a_dataset(tmp_path):
    with pytest.raises(DancenetError, match="no such dataset"):
        Dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DancenetError, match="not a dancenet dataset"):
        Dataset(tmp_path / "empty")


def test_malformed_manifest_is_a_clear_error(tmp_path):
    write_dataset(tmp_path / "data", [("a", random_masks(4, 12, 21, 0))])
    manifest_path = tmp_path / "data" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["height"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DancenetError, match="malformed"):
        Dataset(tmp_path / "data")
