"""The silhouette renderer (dancenet.ingest.render)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dancenet.ingest.render import fit_camera, render_silhouettes
from tests.synthetic import JOINT_NAMES, PARENTS, render_synthetic_dancer, synthetic_positions

HEIGHT, WIDTH = 120, 208


def render(positions, names=JOINT_NAMES, view="front", height=HEIGHT, width=WIDTH):
    return np.stack(list(render_silhouettes(positions, PARENTS, names, height, width, view=view)))


def rows_and_columns(mask):
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def assert_inside_frame(masks):
    border = masks[:, [0, -1], :].any() or masks[:, :, [0, -1]].any()
    assert not border, "foreground touches the frame's border"
    assert all(mask.any() for mask in masks), "a frame is empty"


@pytest.mark.parametrize("view", ["front", "side"])
def test_dancer_lies_inside_the_frame_with_plausible_area(view):
    masks = render_synthetic_dancer(120, HEIGHT, WIDTH, view=view)
    assert masks.shape == (120, HEIGHT, WIDTH) and masks.dtype == bool
    assert_inside_frame(masks)
    area = masks.mean(axis=(1, 2))
    assert area.min() > 0.03 and area.max() < 0.20
    heights = [np.ptp(rows_and_columns(mask)[0]) + 1 for mask in masks]
    assert 0.7 < np.median(heights) / HEIGHT < 0.9  # a standing figure about 80% of the frame


def test_front_view_is_wider_than_side_view():
    def mean_width(masks):
        return np.mean([np.ptp(rows_and_columns(mask)[1]) + 1 for mask in masks])
    positions = synthetic_positions(60, 30)
    assert mean_width(render(positions, view="front")) > 1.3 * mean_width(render(positions, view="side"))


def test_still_pose_gives_identical_frames():
    pose = synthetic_positions(40, 30)[25]
    masks = render(np.repeat(pose[None], 5, axis=0))
    assert masks[0].any()
    for mask in masks[1:]:
        np.testing.assert_array_equal(mask, masks[0])


def test_a_moving_dancer_gives_changing_frames():
    masks = render(synthetic_positions(30, 30))
    assert (masks[0] != masks[-1]).sum() > 50


def test_units_and_facing_do_not_change_the_picture():
    positions = synthetic_positions(30, 30)
    turned = Rotation.from_euler("y", 90, degrees=True).apply(positions.reshape(-1, 3)).reshape(positions.shape)
    reference = render(positions)
    for variant in (positions * 0.01, turned):  # metres instead of centimetres; facing +X
        assert (render(variant) != reference).mean() < 0.002


def test_travel_beyond_the_frame_shrinks_the_figure_to_fit():
    positions = synthetic_positions(60, 30)
    positions[:, :, 0] += np.linspace(0, 2000, 60)[:, None]  # 12 body heights sideways
    masks = render(positions)
    assert_inside_frame(masks)
    heights = [np.ptp(rows_and_columns(mask)[0]) + 1 for mask in masks]
    assert np.median(heights) < 0.5 * HEIGHT
    camera, _, _ = fit_camera(positions, PARENTS, JOINT_NAMES, HEIGHT, WIDTH)
    first, last = camera.project(positions[[0, -1], 0])
    assert first[0] < WIDTH * 0.2 and last[0] > WIDTH * 0.8  # the camera stays put, the dancer moves


def test_unknown_joint_names_still_render_a_figure():
    names = [f"joint{index}" for index in range(len(JOINT_NAMES))]
    masks = render(synthetic_positions(30, 30), names=names)
    assert_inside_frame(masks)
    area = masks.mean(axis=(1, 2))
    assert area.min() > 0.02 and area.max() < 0.25


def test_small_frames_work():
    masks = render(synthetic_positions(10, 30), height=24, width=16)
    assert masks.shape == (10, 24, 16)
    assert_inside_frame(masks)
