"""Segmentation pieces (dancenet.ingest.segment) and frame-rate resampling (dancenet.ingest.timing)."""

import numpy as np

from dancenet.ingest.segment import (BackgroundSegmenter, ChromaSegmenter, ThresholdSegmenter,
                                     choose_method, clean_mask, fit_mask, working_size)
from dancenet.ingest.timing import resample_indices


def disc(height, width, centre, radius):
    rows, columns = np.mgrid[:height, :width]
    return (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 < radius ** 2


def test_fit_mask_pads_and_never_stretches():
    square = np.ones((100, 100), bool)
    fitted = fit_mask(square, 120, 208)
    columns = np.flatnonzero(fitted.any(axis=0))
    assert fitted.shape == (120, 208) and fitted.all(axis=1).sum() == 0  # padded left and right
    assert columns.size == 120 and columns[0] == 44  # 120 wide, centred: (208 - 120) / 2
    circle = fit_mask(disc(300, 300, (150, 150), 100), 60, 200)
    rows, columns = np.flatnonzero(circle.any(axis=1)), np.flatnonzero(circle.any(axis=0))
    assert abs(rows.size - columns.size) <= 1  # still round
    assert np.array_equal(fit_mask(circle, 60, 200), circle)  # already fitted: unchanged


def test_fit_mask_accepts_nonstandard_bools():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    assert fit_mask(mask.view(bool), 20, 20).sum() == 100


def test_clean_mask_removes_specks_fills_small_holes_keeps_gaps():
    mask = disc(120, 208, (60, 60), 30)
    mask[58:61, 58:61] = False  # a 9-pixel hole inside the body
    mask[5, 200] = True  # a speck
    gap = disc(120, 208, (60, 150), 25) & ~disc(120, 208, (60, 150), 12)  # ring: big hole stays
    cleaned = clean_mask(mask | gap)
    assert cleaned[59, 59] and not cleaned[5, 200] and not cleaned[60, 150]
    assert cleaned[gap].all()


def test_threshold_is_the_2018_rule():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[0, 0] = 21
    frame[1, 1] = 20
    mask = ThresholdSegmenter()(frame)
    assert mask[0, 0] and not mask[1, 1] and mask.sum() == 1


def test_chroma_keys_out_the_border_colour_and_its_shadow():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[:] = (30, 170, 60)  # green screen
    frame[:, :12] = (25, 145, 51)  # a soft shadow on the screen: 15% darker, same hue
    body = disc(60, 80, (30, 50), 12)
    frame[body] = (200, 60, 40)
    segmenter = ChromaSegmenter.fit([frame])
    assert np.array_equal(segmenter(frame), body)


def test_background_ignores_flicker_and_finds_the_dancer():
    generator = np.random.default_rng(0)
    room = generator.uniform(50, 200, (48, 64, 3))
    frames, bodies = [], []
    for index in range(12):
        body = disc(48, 64, (24, 6 + 5 * index), 5)
        frame = room * (1 + 0.08 * (-1) ** index) + generator.normal(0, 2, room.shape)
        frame[body] = (250, 250, 250)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        bodies.append(body)
    segmenter = BackgroundSegmenter.fit(frames)
    for frame, body in zip(frames, bodies):
        mask = segmenter(frame)
        assert (mask & body).sum() >= 0.9 * body.sum() and (mask & ~body).sum() <= 3


def test_choose_method():
    black = np.zeros((40, 60, 3), np.uint8)
    black[10:30, 20:30] = 255
    blue = np.broadcast_to(np.uint8([20, 60, 200]), (40, 60, 3)).copy()
    blue[10:30, 20:30] = 255
    room = np.random.default_rng(0).integers(30, 220, (40, 60, 3)).astype(np.uint8)
    assert choose_method([black])[0] == "threshold"
    assert choose_method([blue])[0] == "chroma"
    assert choose_method([room])[0] == "background"


def test_working_size_shrinks_by_whole_factors_only_when_large():
    assert working_size(240, 416, 120, 208) == (240, 416)
    assert working_size(360, 640, 120, 208) == (360, 640)  # 3x: no whole factor keeps 2x
    assert working_size(720, 1280, 120, 208) == (240, 426)  # by 3


def test_resample_indices():
    sixty = np.arange(20) / 60
    assert np.array_equal(resample_indices(sixty, 20 / 60, 30), np.arange(0, 20, 2))
    ten = np.arange(4) / 10
    assert np.array_equal(resample_indices(ten, 0.4, 30), np.repeat(np.arange(4), 3))
    variable = np.array([0.0, 0.01, 0.1, 0.25])  # VFR: each output time shows the latest frame
    assert np.array_equal(resample_indices(variable, 0.35, 10), [0, 2, 2, 3])


def test_working_size_caps_the_longer_side_when_asked():
    assert working_size(720, 1280, 120, 208, oversample=4.0) == (720, 1280)
    assert working_size(720, 1280, 120, 208, oversample=4.0, longest=640) == (360, 640)
    assert working_size(1080, 1920, 120, 208, oversample=4.0, longest=640) == (360, 640)
    assert working_size(576, 576, 120, 208, oversample=4.0, longest=640) == (576, 576)
