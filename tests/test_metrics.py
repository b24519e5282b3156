"""The dance-quality metrics on synthetic videos whose answer is known."""

import numpy as np
import pytest
from scipy import linalg, ndimage

from dancenet.evaluate import metrics
from dancenet.evaluate.features import FrechetFeature, frechet_distance, shape_descriptors
from tests.evaluate_fixtures import dancer_video

FPS = 30.0
HEIGHT, WIDTH = 60, 104


@pytest.fixture(scope="module")
def dance():
    return dancer_video(300, HEIGHT, WIDTH, seed=0)


@pytest.fixture(scope="module")
def other_dance():
    return dancer_video(300, HEIGHT, WIDTH, seed=1)


def test_downsample_matches_block_mean():
    frames = np.random.default_rng(0).random((3, 13, 21)) < 0.4
    low = metrics.downsample(frames, 4)
    padded = np.zeros((3, 16, 24))
    padded[:, :13, :21] = frames
    assert np.allclose(low, padded.reshape(3, 4, 4, 6, 4).mean(axis=(2, 4)))


def test_soft_iou_is_iou_for_binary_frames(dance, other_dance):
    first, second = dance[:20], other_dance[:20]
    matrix = metrics.soft_iou_matrix(first.reshape(20, -1), second.reshape(20, -1))
    assert np.allclose(np.diag(matrix), metrics.frame_iou(first, second), atol=1e-6)
    assert metrics.frame_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))[0] == 1.0


def test_frozen_video_has_freeze_ratio_near_one(dance):
    threshold = metrics.freeze_threshold(metrics.motion_energy(dance), HEIGHT * WIDTH)
    frozen = np.repeat(dance[:1], 90, axis=0)
    assert metrics.freeze_ratio(metrics.motion_energy(frozen), threshold, FPS) > 0.95
    assert metrics.freeze_ratio(metrics.motion_energy(dance), threshold, FPS) < 0.05
    # A still moment shorter than 0.5 s is a pause, not a freeze.
    paused = np.concatenate([dance[:60], np.repeat(dance[60:61], 10, axis=0), dance[61:120]])
    assert metrics.freeze_ratio(metrics.motion_energy(paused), threshold, FPS) == 0.0


def test_freeze_threshold_counts_identical_frames_even_when_reference_has_them():
    reference_energy = np.zeros(100)  # a reference whose 5th percentile is 0
    threshold = metrics.freeze_threshold(reference_energy, pixels=100)
    assert metrics.freeze_ratio(np.zeros(40), threshold, FPS) == 1.0


def test_repeated_clip_has_high_loop_ratio_and_fresh_motion_low(dance):
    looped = np.concatenate([dance[:60]] * 5)  # a 2-second clip, five times
    result = metrics.loop_analysis(looped, FPS)
    # Windows starting in the first 2 s have nothing to repeat; every later one repeats exactly.
    expected = 1 - 60 / (len(looped) - 30 + 1)
    assert result.ratio == pytest.approx(expected, abs=0.02)
    assert np.all(result.best_lag[result.best_similarity >= 0.999] % 60 == 0)
    assert metrics.loop_ratio(dance, FPS) < 0.05
    assert result.recurrence.shape[0] == result.recurrence.shape[1]


def test_still_windows_are_not_loops(dance):
    frozen = np.repeat(dance[:1], 120, axis=0)
    assert metrics.loop_ratio(frozen, FPS, min_motion=0.0) > 0.5
    assert metrics.loop_ratio(frozen, FPS, min_motion=1e-4) == 0.0


def test_loop_blocks_agree_with_one_block(dance):
    looped = np.concatenate([dance[:45]] * 4)
    small = metrics.loop_analysis(looped, FPS, block=7)
    large = metrics.loop_analysis(looped, FPS, block=1000)
    assert np.allclose(small.best_similarity, large.best_similarity, atol=1e-5)


def test_clean_dancer_has_no_artifacts(dance):
    result = metrics.artifact_analysis(dance)
    assert result.ratio < 0.001
    assert result.empty_ratio == 0.0


def test_noise_and_ghosts_have_high_artifact_ratio(dance):
    noise = np.random.default_rng(0).random((20, HEIGHT, WIDTH)) < 0.08
    assert metrics.artifact_analysis(noise).ratio > 0.8
    # Blurred ghost copies of the dancer, shifted well away from it (the 2018 model's rings and blobs).
    ghost = ndimage.gaussian_filter(dance[:20].astype(float), sigma=(0, 1.5, 1.5)) > 0.35
    ghosted = dance[:20] | np.roll(ghost, WIDTH // 2, axis=2) | np.roll(ghost, -WIDTH // 3, axis=2)
    assert metrics.artifact_analysis(ghosted).ratio > 0.3


def test_nearby_fragment_is_body_and_distant_fragment_is_artifact():
    frame = np.zeros((1, 40, 40), dtype=bool)
    frame[0, 10:30, 10:16] = True  # body
    near, far = frame.copy(), frame.copy()
    near[0, 12:14, 17:19] = True  # one pixel of background between it and the body
    far[0, 12:14, 34:36] = True
    assert metrics.artifact_analysis(near, gap=2).ratio == 0.0
    assert metrics.artifact_analysis(far, gap=2).ratio == pytest.approx(4 / (120 + 4))


def test_specks_are_removed_from_a_whole_frame_and_a_frame_that_came_apart_is_kept(dance):
    video = dance[:5].copy()  # frames 0 and 3 stay in one piece
    body = video.sum(axis=(1, 2))
    video[1, 2:4, 2:4] = True  # a speck in a corner: 4 pixels, well under 2% of the body
    video[2, 2:4, 2:4] = True
    video[2, -4:-2, -4:-2] = True  # two specks
    blob = np.zeros_like(video[4])
    blob[2:2 + 8, 2:2 + int(np.ceil(0.03 * body[4] / 8))] = True  # 3% of the body, off it
    video[4] |= blob
    before = video.copy()
    for given in (video, video.astype(np.uint8) * 255):
        clean = metrics.remove_specks(given, 0.02)
        assert clean.dtype == bool and not np.shares_memory(clean, given)
        assert np.array_equal(clean[:4], dance[:4])  # specks gone, the bodies as they were
        assert np.array_equal(clean[4], video[4])  # came apart: left for the artifact ratio
    assert np.array_equal(video, before)  # the input is untouched
    assert metrics.artifact_analysis(clean[:4]).stray_ratio == 0
    assert metrics.artifact_analysis(clean[4:]).ratio > 0.02
    assert np.array_equal(metrics.remove_specks(video, 0.05)[4], dance[4])  # under a larger share, a speck
    near = dance[:1].copy()
    rows, columns = np.nonzero(near[0])
    near[0, rows[0] - 2, columns[0]] = True  # a pixel two above the head: within a gap of 2, body
    assert np.array_equal(metrics.remove_specks(near, 0.02, gap=2), near)
    assert np.array_equal(metrics.remove_specks(near, 0.02, gap=1), dance[:1])
    for empty in (np.zeros((0, HEIGHT, WIDTH), bool), np.zeros((3, HEIGHT, WIDTH), np.uint8)):
        assert np.array_equal(metrics.remove_specks(empty, 0.02), empty.astype(bool))


def test_a_stack_scores_each_frame_as_that_frame_alone(dance):
    """Components are labelled over the whole stack at once; each frame keeps its own."""
    video = dance[:12].copy()
    video[1::3] |= np.random.default_rng(1).random((4, HEIGHT, WIDTH)) < 0.05  # noise around her
    video[2::3] |= np.roll(video[2::3], WIDTH // 2, axis=2)  # a second figure far away
    whole = metrics.artifact_analysis(video, chunk=5)  # chunks that cut the stack unevenly
    alone = [metrics.artifact_analysis(frame[None]) for frame in video]
    assert np.allclose(whole.per_frame, [result.per_frame[0] for result in alone])
    assert np.array_equal(whole.foreground, [result.foreground[0] for result in alone])
    assert whole.per_frame[0] < 0.001 and whole.per_frame[1] > 0.1 and whole.per_frame[2] > 0.3


def test_empty_frames_are_counted(dance):
    video = dance[:40].copy()
    video[::2] = False
    assert metrics.artifact_analysis(video).empty_ratio == 0.5


def test_shuffled_frames_have_far_more_motion_energy(dance):
    shuffled = dance[np.random.default_rng(0).permutation(len(dance))]
    assert metrics.motion_energy(shuffled).mean() > 3 * metrics.motion_energy(dance).mean()


def test_memorisation_and_diversity(dance, other_dance):
    assert np.allclose(metrics.best_match_iou(dance, dance), 1.0)
    assert metrics.best_match_iou(other_dance, dance).mean() < 0.95
    assert metrics.diversity([dance, dance]) == 0.0
    assert metrics.diversity([dance, other_dance]) > 0.3


def test_centring_moves_each_shape_to_the_middle():
    blocks = np.zeros((3, 5, 7), np.float32)
    blocks[0, 0, 0] = 1.0  # a corner block
    blocks[1, 3:5, 4:7] = 0.5  # a patch at the bottom right
    centred = metrics.centre_blocks(blocks)
    assert centred[0, 2, 3] == 1.0 and centred[0].sum() == 1.0
    assert np.array_equal(centred[1, 2:4, 2:5], blocks[1, 3:5, 4:7]) and centred[1].sum() == blocks[1].sum()
    assert not centred[2].any()  # an empty frame stays empty
    # on an even grid too, a shape lands in one place wherever it stood (halves never round to even)
    shape = np.zeros((6, 8), np.float32)
    shape[1:3, 1:3] = 1.0
    moved = np.stack([np.roll(np.roll(shape, down, axis=0), right, axis=1) for down in range(3) for right in range(4)])
    centred = metrics.centre_blocks(moved)
    assert all(np.array_equal(one, centred[0]) for one in centred)


def test_pose_match_finds_a_pose_wherever_it_is_danced_and_not_a_doubled_body(dance, other_dance):
    moved = np.zeros_like(dance)
    moved[:, :, 12:] = dance[:, :, :-12]  # the same dance 12 px to the right
    assert metrics.best_match_iou(moved, dance).mean() < 0.8
    assert metrics.pose_match(moved, dance).min() == pytest.approx(1.0)
    doubled = dance.copy()
    doubled[:, :, 20:] |= other_dance[:, :, :-20]  # two bodies run together
    assert np.median(metrics.pose_match(doubled, dance)) < metrics.UNLIKE_IOU
    assert np.median(metrics.pose_match(other_dance, dance)) > metrics.UNLIKE_IOU + 0.1
    # an empty frame is no pose: it matches (the empty-frame ratio counts it), and empty library frames match nothing
    empty = np.zeros_like(dance[:2])
    assert np.array_equal(metrics.pose_match(empty, dance), [1.0, 1.0])
    assert np.array_equal(metrics.pose_match(doubled[:3], np.concatenate([empty, dance[:0]])), [1.0] * 3)
    np.testing.assert_array_equal(metrics.pose_match(doubled[:20], np.concatenate([empty, dance])),
                                  metrics.pose_match(doubled[:20], dance))


def test_frechet_distance_matches_scipy_sqrtm():
    random = np.random.default_rng(0)
    first = random.normal(size=(400, 5)) @ random.normal(size=(5, 5))
    second = random.normal(size=(300, 5)) @ random.normal(size=(5, 5)) + 0.5
    mean_first, mean_second = first.mean(0), second.mean(0)
    cov_first, cov_second = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    expected = (np.sum((mean_first - mean_second) ** 2) + np.trace(cov_first) + np.trace(cov_second)
                - 2 * np.trace(linalg.sqrtm(cov_first @ cov_second).real))
    assert frechet_distance(first, second) == pytest.approx(expected, rel=1e-6)


def test_reference_against_itself_has_zero_frechet_and_shuffled_far(dance, other_dance):
    feature = FrechetFeature.fit([dance, other_dance], FPS)
    reference = feature.transform([dance, other_dance])
    assert frechet_distance(reference, reference) < 1e-8
    halves = frechet_distance(feature.transform([dance[:150], other_dance[:150]]),
                              feature.transform([dance[150:], other_dance[150:]]))
    shuffled = dance[np.random.default_rng(0).permutation(len(dance))]
    assert frechet_distance(feature.transform([shuffled]), reference) > 10 * halves


def test_shape_descriptors_of_a_rectangle():
    frame = np.zeros((1, 20, 40), dtype=bool)
    frame[0, 5:15, 10:30] = True
    area, centroid_x, centroid_y, _, _, correlation, top, bottom, left, right, _, _ = shape_descriptors(frame)[0]
    assert area == pytest.approx(200 / 800)
    assert (centroid_x, centroid_y) == (pytest.approx(0.5), pytest.approx(0.5))
    assert correlation == pytest.approx(0.0, abs=1e-9)
    assert (top, bottom, left, right) == (0.25, 0.75, 0.25, 0.75)
    assert np.all(shape_descriptors(np.zeros((2, 8, 8), dtype=bool)) == 0)


def test_feature_needs_a_long_enough_clip(dance):
    with pytest.raises(ValueError, match="window"):
        FrechetFeature.fit([dance[:5]], FPS)


def test_windows_slide_by_the_stride_and_a_short_video_is_one_window():
    assert metrics.window_starts(750, 300, 30).tolist() == list(range(0, 451, 30))
    assert metrics.window_starts(100, 300, 30).tolist() == [0]
    burst = np.zeros(100)
    burst[40:50] = 1  # one value per frame
    values = metrics.window_ratios(burst, None, 100, metrics.window_starts(100, 20, 5), 20)
    assert values.max() == 0.5 and values.argmax() * 5 == 30 and values[0] == 0
    # One value per pair of frames (motion energy): a window of 20 frames holds 19 of them.
    pairs = metrics.window_ratios(np.ones(99), None, 100, np.array([0, 80]), 20)
    assert pairs.tolist() == [1.0, 1.0]
    # Weighted: pixels over foreground, and a window with no weight is 0.
    weights = np.r_[np.zeros(50), np.full(50, 4.0)]
    weighted = metrics.window_ratios(weights / 2, weights, 100, np.array([0, 50]), 50)
    assert weighted.tolist() == [0.0, 0.5]
    assert metrics.window_ratios(np.ones(99), None, 100, np.array([0]), 300).tolist() == [1.0]
