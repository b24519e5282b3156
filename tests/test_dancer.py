"""Keeping one dancer through a clip (dancenet.ingest.dancer, dancenet.ingest.clip), on masks."""

import numpy as np
import pytest

from dancenet.errors import DancenetError
from dancenet.ingest.clip import finish_clip
from dancenet.ingest.dancer import MaskStore, areas_and_boxes, fill_gaps, select_clip, select_dancer
from scipy import ndimage

HEIGHT, WIDTH = 120, 160


def figure(centre_column, top=20, height=80, width=20):
    """A (HEIGHT, WIDTH) bool person-like block: body with a head."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    left = centre_column - width // 2
    mask[top + 15:top + height, left:left + width] = True
    mask[top:top + 15, centre_column - 6:centre_column + 6] = True
    return mask


def store_of(masks):
    store = MaskStore(HEIGHT, WIDTH)
    for mask in masks:
        store.append(mask)
    return store


def blobs(mask):
    return ndimage.label(mask)[1]


def test_mask_store_round_trip_and_repeats():
    generator = np.random.default_rng(0)
    masks = [generator.random((HEIGHT, WIDTH)) > 0.5 for _ in range(3)]
    store = store_of(masks)
    store.repeat_last()
    assert len(store) == 4 and all(np.array_equal(store[i], masks[i]) for i in range(3))
    assert np.array_equal(store[3], masks[2])
    store[1] = masks[0]
    assert np.array_equal(store[1], masks[0])


def test_most_central_person_kept_then_tracked():
    """Two people: the central one is kept at the start and followed when the other crosses the
    centre; the other person is reported, a static object dropped."""
    frames = []
    for step in range(10):
        dancer = figure(80 + 4 * step)  # moves right from the centre
        other = figure(20 + 6 * step)  # walks in from the left, through the centre
        other &= ~ndimage.binary_dilation(dancer, iterations=8)  # never touching her
        lamp = np.zeros_like(dancer)
        lamp[5:15, 150:155] = True
        frames.append((dancer, other | lamp | dancer))
    store = store_of([mask for _, mask in frames])
    selection = select_clip(store)
    for index, (dancer, _) in enumerate(frames):
        assert np.array_equal(store[index], dancer), index
    assert selection.others == 10


def test_fragments_close_to_her_are_joined():
    body = figure(80)
    hand = np.zeros_like(body)
    hand[60:66, 92:97] = True  # two pixels from her side: cut off at the wrist
    kept, other, dropped, joined = select_dancer(body | hand, None)
    assert joined and not other and blobs(kept) == 1
    assert kept[hand].all() and kept[body].all()
    assert (kept & ~(body | hand)).sum() <= 3 * 4  # a thin bridge across the gap, no more


def test_joining_keeps_the_gap_between_arm_and_body_open():
    """A raised arm whose hand the segmenter cut off: joining the hand must not fill the space
    between the arm and the head (a closing would)."""
    body = figure(80)
    body[20:35, 95:99] = True  # an upper arm, apart from the head
    body[35:40, 86:99] = True  # joined to the body at the shoulder
    hand = np.zeros_like(body)
    hand[12:18, 95:99] = True  # cut off two pixels above the arm
    kept, _, _, joined = select_dancer(body | hand, None)
    assert joined and blobs(kept) == 1
    assert not kept[22:34, 88:93].any()  # between head and arm: still open


def test_far_small_object_dropped_and_not_a_person():
    body = figure(60)
    ball = np.zeros_like(body)
    ball[100:104, 140:144] = True
    kept, other, dropped, _ = select_dancer(body | ball, None)
    assert np.array_equal(kept, body) and dropped and not other


def test_short_loss_filled_from_neighbours_long_one_not():
    fps = 30.0
    masks = [figure(40 + step) for step in range(60)]
    for lost in (20, 21, 22):  # a blurred leap: 0.1 s without her
        masks[lost] = np.zeros_like(masks[lost])
    for lost in range(35, 55):  # 0.67 s: longer than any leap, she may have left
        masks[lost] = np.zeros_like(masks[lost])
    store = store_of(masks)
    filled = fill_gaps(store, fps)
    assert filled == 3
    areas, boxes = areas_and_boxes(store)
    for index in (20, 21, 22):
        assert areas[index] == areas[19]
        centre = (boxes[index, 1] + boxes[index, 3]) / 2
        assert abs(centre - (40 + index)) <= 1  # moved along her path, not frozen
    assert (areas[35:55] == 0).all()


def test_partial_loss_is_missing_too():
    """A frame where the segmenter keeps only a scrap of her (her head) is mended as well."""
    masks = [figure(60) for _ in range(20)]
    masks[10] = masks[10] & (np.arange(HEIGHT) < 30)[:, None]
    store = store_of(masks)
    assert fill_gaps(store, 30.0) == 1 and np.array_equal(store[10], masks[9])


def test_no_dancer_found_names_the_file(tmp_path):
    store = store_of([np.zeros((HEIGHT, WIDTH), bool)] * 30)
    path = tmp_path / "empty room.mp4"
    with pytest.raises(DancenetError) as caught:
        finish_clip(store, path, "person", "dancer", 60, 80, 30.0)
    message = str(caught.value)
    assert message.startswith(f"{path}: no dancer found") and "\n" not in message


def test_a_speck_in_a_few_frames_is_no_dancer(tmp_path):
    masks = [np.zeros((HEIGHT, WIDTH), bool) for _ in range(40)]
    masks[3][50:52, 50:52] = True
    with pytest.raises(DancenetError, match="no dancer found"):
        finish_clip(store_of(masks), tmp_path / "v.mp4", "background", "full", 60, 80, 30.0)


def test_second_person_warns(tmp_path):
    masks = [figure(80) | figure(20) for _ in range(10)]
    _, extra = finish_clip(store_of(masks), tmp_path / "two.mp4", "person", "full", 60, 80, 30.0)
    assert any("another person" in warning for warning in extra["warnings"])
    _, extra = finish_clip(store_of([figure(80)] * 10), tmp_path / "one.mp4", "person", "full", 60, 80, 30.0)
    assert extra["warnings"] == []


def test_without_the_extra_person_says_how_to_install(tmp_path, capsys, monkeypatch):
    """A machine without MediaPipe: --segment person is a one-line error with the install
    command; auto falls back to background subtraction and says what would do better."""
    from dancenet.cli import main
    from dancenet.ingest import PrepareOptions, prepare, person
    from tests.synthetic_footage import dancer_in_room, write_video

    monkeypatch.setattr(person, "available", lambda: False)
    video, _, _ = dancer_in_room(24, 120, 160)
    path = write_video(tmp_path / "room.mp4", video)
    code = main(["prepare", str(path), "--out", str(tmp_path / "data"), "--segment", "person"])
    error = capsys.readouterr().err
    assert code == 2 and "pip install 'dancenet[person]'" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1 and not (tmp_path / "data").exists()
    dataset = prepare([path], tmp_path / "auto", PrepareOptions(height=60, width=80, quiet=True))
    assert dataset.clips[0].segmentation == "background"
    assert "pip install 'dancenet[person]'" in dataset.clips[0].extra["segment_reason"]
