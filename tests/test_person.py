"""``--segment person`` end to end on synthetic footage: a dressed, rendered dancer in a room with
a chair, an empty room, and the CLI's messages. Needs the person extra (MediaPipe)."""

import numpy as np
import pytest
from scipy import ndimage

from dancenet.cli import main
from dancenet.errors import DancenetError
from dancenet.ingest import PrepareOptions, prepare
from dancenet.ingest.segment import fit_mask
from tests.synthetic_footage import dancer_in_room, empty_room, write_video

pytest.importorskip("mediapipe", reason="the person extra is not installed: pip install 'dancenet[person]'")

FRAMES, SOURCE_HEIGHT, SOURCE_WIDTH = 36, 240, 320
HEIGHT, WIDTH = 60, 104


@pytest.fixture(scope="module")
def room_video(tmp_path_factory):
    video, masks, chair = dancer_in_room(FRAMES, SOURCE_HEIGHT, SOURCE_WIDTH)
    path = write_video(tmp_path_factory.mktemp("person") / "room.mp4", video)
    return path, masks, chair


def test_person_finds_her_and_never_the_chair(room_video, tmp_path):
    path, masks, chair = room_video
    dataset = prepare([path], tmp_path / "data", PrepareOptions(
        height=HEIGHT, width=WIDTH, segment="person", framing="full", quiet=True))
    assert dataset.clips[0].segmentation == "person"
    frames = dataset.frames(0, len(dataset)).astype(bool)
    truth = np.stack([fit_mask(mask, HEIGHT, WIDTH) for mask in masks])
    iou = (frames & truth).sum(axis=(1, 2)) / (frames | truth).sum(axis=(1, 2))
    assert iou.min() >= 0.8, f"IoU min {iou.min():.3f} mean {iou.mean():.3f}"
    chair_uncovered = fit_mask(chair, HEIGHT, WIDTH) & ~ndimage.binary_dilation(truth, iterations=2)
    assert not (frames & chair_uncovered).any()  # the chair, wherever she is not in front of it


def test_empty_room_is_no_dancer(tmp_path):
    path = write_video(tmp_path / "empty room.mp4", empty_room(24, SOURCE_HEIGHT, SOURCE_WIDTH))
    for segment in ("person", "auto"):
        out = tmp_path / f"data-{segment}"
        with pytest.raises(DancenetError) as caught:
            prepare([path], out, PrepareOptions(height=HEIGHT, width=WIDTH, segment=segment, quiet=True))
        assert str(caught.value).startswith(f"{path}: no dancer found")
        assert not out.exists()


def test_auto_chooses_person_frames_her_and_says_so(room_video, tmp_path, capsys):
    from dancenet.dataset import Dataset

    path, _, _ = room_video
    code = main(["prepare", str(path), "--out", str(tmp_path / "data"), "--size", f"{WIDTH}x{HEIGHT}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "--segment auto chose person" in out and "framing dancer: standing height" in out
    dataset = Dataset(tmp_path / "data")
    clip = dataset.clips[0]
    assert clip.segmentation == "person" and "MediaPipe finds a person" in clip.extra["segment_reason"]
    frames = dataset.frames(0, len(dataset)).astype(bool)
    heights = np.array([np.flatnonzero(frame.any(axis=1)).size for frame in frames])
    assert 0.7 * HEIGHT <= np.median(heights) <= 0.9 * HEIGHT  # she fills ~80% of the height


def test_two_people_warn_and_keep_the_central_one(tmp_path):
    from tests.synthetic_footage import two_in_room

    video, hers, other = two_in_room(FRAMES, SOURCE_HEIGHT, 2 * SOURCE_WIDTH)
    path = write_video(tmp_path / "two.mp4", video)
    dataset = prepare([path], tmp_path / "data", PrepareOptions(
        height=HEIGHT, width=2 * WIDTH, segment="person", framing="full", quiet=True))
    warnings = dataset.clips[0].extra["warnings"]
    assert any("other people in view" in warning for warning in warnings), warnings
    frames = dataset.frames(0, len(dataset)).astype(bool)
    truth = np.stack([fit_mask(mask, HEIGHT, 2 * WIDTH) for mask in hers])
    not_hers = np.stack([fit_mask(mask, HEIGHT, 2 * WIDTH) for mask in other])
    iou = (frames & truth).sum(axis=(1, 2)) / (frames | truth).sum(axis=(1, 2))
    assert iou.min() >= 0.8, f"IoU min {iou.min():.3f}"
    assert not (frames & not_hers).any()
