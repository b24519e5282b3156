"""Framing (dancenet.ingest.framing): one zoom per clip on the dancer, slow travel, crops."""

import numpy as np

from dancenet.ingest.framing import STANDING_FILL, crop_mask, dancer_framing, full_window

SOURCE_HEIGHT, SOURCE_WIDTH, HEIGHT, WIDTH, FPS = 480, 640, 120, 208, 30.0


def boxes_of(lefts, top=300, height=100, width=30):
    lefts = np.asarray(lefts, dtype=np.float64)
    return np.stack([np.full_like(lefts, top), lefts, np.full_like(lefts, top + height), lefts + width], axis=1)


def rectangle(box):
    mask = np.zeros((SOURCE_HEIGHT, SOURCE_WIDTH), bool)
    top, left, bottom, right = (int(value) for value in box)
    mask[top:bottom, left:right] = True
    return mask


def test_small_dancer_fills_eighty_percent_with_one_fixed_crop():
    """A dancer a fifth of the frame high, moving a little: one zoom, one crop for the clip."""
    lefts = 300 + 20 * np.sin(np.arange(90) / 10)
    boxes = boxes_of(lefts)
    framing = dancer_framing(boxes, SOURCE_HEIGHT, SOURCE_WIDTH, HEIGHT, WIDTH, FPS)
    assert np.allclose(framing.windows, framing.windows[0])  # no per-frame recentring
    assert "zoom" in framing.description
    for box, window in zip(boxes, framing.windows):
        cropped = crop_mask(rectangle(box), window, HEIGHT, WIDTH)
        rows = np.flatnonzero(cropped.any(axis=1))
        assert abs(rows.size - STANDING_FILL * HEIGHT) <= 2
        assert not cropped[:, 0].any() and not cropped[:, -1].any()  # her travel stays inside


def test_wide_travel_pans_slowly_and_keeps_her_in_view():
    lefts = np.linspace(20, 590, 150)  # crosses the whole room in 5 s
    lefts[70] = 400  # one frame of a bad box: must not jerk the crop
    boxes = boxes_of(lefts)
    boxes[40] = np.nan  # a frame without her
    framing = dancer_framing(boxes, SOURCE_HEIGHT, SOURCE_WIDTH, HEIGHT, WIDTH, FPS)
    steps = np.abs(np.diff(framing.windows[:, 1]))
    assert steps.max() < 0.01 * SOURCE_WIDTH  # a slow pan: under 1% of the frame a frame
    assert np.ptp(framing.windows[:, 0]) == 0 and np.ptp(framing.windows[:, 2]) == 0  # one zoom
    inside = 0
    for index, (box, window) in enumerate(zip(boxes, framing.windows)):
        if index in (40, 70):
            continue
        centre = (box[1] + box[3]) / 2
        inside += window[1] <= centre <= window[1] + window[3]
    assert inside >= 0.95 * (len(boxes) - 2)


def test_dancer_filling_the_frame_keeps_the_whole_frame():
    boxes = np.tile([10.0, 200.0, 470.0, 440.0], (10, 1))
    framing = dancer_framing(boxes, SOURCE_HEIGHT, SOURCE_WIDTH, HEIGHT, WIDTH, FPS)
    assert np.allclose(framing.windows[0], full_window(SOURCE_HEIGHT, SOURCE_WIDTH, HEIGHT, WIDTH))


def test_crop_past_the_edge_pads_with_background():
    mask = np.ones((40, 40), bool)
    cropped = crop_mask(mask, np.array([-20.0, -20.0, 80.0, 80.0]), 40, 40)
    assert cropped[10:30, 10:30].all() and not cropped[:9].any() and not cropped[:, 31:].any()


def test_full_window_matches_the_target_aspect():
    top, left, height, width = full_window(SOURCE_HEIGHT, SOURCE_WIDTH, HEIGHT, WIDTH)
    assert np.isclose(width / height, WIDTH / HEIGHT)
    assert height >= SOURCE_HEIGHT and width >= SOURCE_WIDTH and np.isclose(top + height / 2, SOURCE_HEIGHT / 2)
