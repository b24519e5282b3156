"""BVH parsing, forward kinematics and BVH clips (dancenet.ingest.bvh)."""

import math

import numpy as np
import pytest

from dancenet.errors import DancenetError
from dancenet.ingest import PrepareOptions
from dancenet.ingest.bvh import (CALIBRATION_FRAMES, forward_kinematics, iter_clips, parse_bvh,
                                 resample)
from tests.synthetic import (JOINT_NAMES, OFFSETS, PARENTS, bvh_text, synthetic_positions,
                             write_synthetic_bvh)

# Three joints in a chain, one unit apart along Y, and an End Site one unit along X.
TINY = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT a
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT b
    {
      OFFSET 0 1 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 1 0 0
      }
    }
  }
}
MOTION
Frames: 4
Frame Time: 0.5
0 0 0 0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 90 0 0 0 90
0 0 0 0 0 0 90 90 0 0 0 0
0 0 0 0 180 0 0 0 0 -90 0 0
"""

# Worked out by hand with Rz(90): x->y, y->-x; Rx(90): y->z, z->-y; Ry(90): z->x, x->-z.
TINY_POSITIONS = np.array([
    # rest pose
    [[0, 0, 0], [0, 1, 0], [0, 2, 0], [1, 2, 0]],
    # root at (1,2,3) turned Rz90: a = root + Rz(0,1,0) = (0,2,3); b = a + Rz Rx (0,1,0) = a + (0,0,1);
    # end = b + Rz Rx Ry (1,0,0) = b + Rz Rx (0,0,-1) = b + Rz (0,1,0) = b + (-1,0,0)
    [[1, 2, 3], [0, 2, 3], [0, 2, 4], [-1, 2, 4]],
    # a has Zrotation 90 then Xrotation 90: R = Rz Rx; b = a + Rz Rx (0,1,0) = a + (0,0,1);
    # end = b + Rz Rx (1,0,0) = b + (0,1,0)
    [[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 2, 1]],
    # root Rx180 flips Y; b has Zrotation -90: end = b + Rx180 Rz(-90) (1,0,0) = b + Rx180 (0,-1,0)
    [[0, 0, 0], [0, -1, 0], [0, -2, 0], [0, -1, 0]],
], dtype=float)


def write(tmp_path, text, name="take.bvh", newline="\n"):
    path = tmp_path / name
    with open(path, "w", newline="") as file:
        file.write(text.replace("\n", newline))
    return path


def test_tiny_bvh_matches_hand_computed_positions(tmp_path):
    motion = parse_bvh(write(tmp_path, TINY))
    assert motion.skeleton.names == ("root", "a", "b", "b_end")
    assert motion.skeleton.parents.tolist() == [-1, 0, 1, 2]
    assert motion.skeleton.is_end_site.tolist() == [False, False, False, True]
    assert motion.frame_time == 0.5 and motion.fps == 2.0
    positions = forward_kinematics(motion)
    assert positions.shape == (4, 4, 3)
    np.testing.assert_allclose(positions, TINY_POSITIONS, atol=1e-12)


def test_channel_order_is_the_order_listed(tmp_path):
    """Listing a's rotations X before Z means R = Rx Rz: b = a + Rx Rz (0,1,0) = a + (-1,0,0)."""
    text = TINY.replace("CHANNELS 3 Zrotation Xrotation Yrotation\n    JOINT b",
                        "CHANNELS 3 Xrotation Zrotation Yrotation\n    JOINT b")
    positions = forward_kinematics(parse_bvh(write(tmp_path, text)))
    np.testing.assert_allclose(positions[2], [[0, 0, 0], [0, 1, 0], [-1, 1, 0], [-1, 1, 1]], atol=1e-12)


def test_tolerates_comments_blank_lines_whitespace_and_crlf(tmp_path):
    messy = ("# exported by hand\n\n" + TINY).replace("ROOT root\n{", "ROOT root {  // brace on the line\n")
    messy = messy.replace("    OFFSET 0 1 0\n", "\t\tOFFSET   0\t1  0   \n\n")
    messy = messy.replace("Frame Time: 0.5", "Frame Time:0.5   # two frames a second")
    motion = parse_bvh(write(tmp_path, messy, newline="\r\n"))
    np.testing.assert_allclose(forward_kinematics(motion), TINY_POSITIONS, atol=1e-12)


def test_bone_lengths_stay_constant_over_a_dance(tmp_path):
    motion = parse_bvh(write_synthetic_bvh(tmp_path / "dance.bvh", frames=480, fps=60))
    positions = forward_kinematics(motion)
    assert positions.shape == (480, len(JOINT_NAMES), 3)
    assert np.ptp(positions[:, 0], axis=0).max() > 10  # the dancer really moves
    for child, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        lengths = np.linalg.norm(positions[:, child] - positions[:, parent], axis=-1)
        np.testing.assert_allclose(lengths, np.linalg.norm(OFFSETS[child]), rtol=1e-9)


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX", "ZYX", "YXZ", "XZY"])
def test_every_channel_order_gives_the_same_dance(tmp_path, order):
    """The same poses written as Euler angles in each order; positions checked against scipy."""
    root_channels = ("Zposition", f"{order[0]}rotation", "Xposition", f"{order[1]}rotation",
                     "Yposition", f"{order[2]}rotation")  # positions interleaved with rotations
    path = write_synthetic_bvh(tmp_path / "dance.bvh", frames=60, fps=60, channel_order=order,
                               root_channels=root_channels)
    positions = forward_kinematics(parse_bvh(path))
    np.testing.assert_allclose(positions, synthetic_positions(60, 60), atol=1e-6)


MALFORMED = {
    "truncated motion": (lambda text: text.rsplit("\n", 2)[0] + "\n", r"truncated MOTION block"),
    "fewer values": (lambda text: text.replace("1 2 3 90 0 0 0 90 0 0 0 90", "1 2 3 90 0 0 0 90 0 0 0"),
                     r"line 25: 11 values for 12 channels"),
    "more values": (lambda text: text.replace("1 2 3 90 0 0 0 90 0 0 0 90", "1 2 3 90 0 0 0 90 0 0 0 90 7"),
                    r"line 25: 13 values for 12 channels"),
    "non-numeric value": (lambda text: text.replace("1 2 3 90", "1 2 abc 90"), r"line 25: not a finite number: 'abc'"),
    "nan value": (lambda text: text.replace("1 2 3 90", "1 2 nan 90"), r"line 25: not a finite"),
    "unknown channel": (lambda text: text.replace("Zrotation Xrotation Yrotation\n    JOINT b",
                                                  "Zrotation Wrotation Yrotation\n    JOINT b"),
                        r"line 9: unknown channel 'Wrotation'"),
    "missing hierarchy": (lambda text: text.replace("HIERARCHY\n", ""), r"must start with HIERARCHY"),
    "missing frames": (lambda text: text.replace("Frames: 4\n", ""), r"expected 'Frames: N'"),
    "missing frame time": (lambda text: text.replace("Frame Time: 0.5\n", ""), r"expected 'Frame Time: T'"),
    "zero frame time": (lambda text: text.replace("Frame Time: 0.5", "Frame Time: 0"), r"Frame Time must be"),
    "zero frames": (lambda text: text.split("Frames:")[0] + "Frames: 0\nFrame Time: 0.5\n", r"zero frames"),
    "missing motion": (lambda text: text.split("MOTION")[0], r"no MOTION section"),
    "truncated hierarchy": (lambda text: text.split("JOINT b")[0], r"hierarchy ends early"),
    "bad offset": (lambda text: text.replace("OFFSET 1 0 0", "OFFSET 1 x 0"), r"line 16: expected a number"),
    "empty file": (lambda text: "", r"not a BVH file"),
    "binary file": (lambda text: "\x00\x01\x02garbage", r"not a BVH file"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_bvh_is_a_one_line_user_error_naming_the_file(tmp_path, case):
    mutate, problem = MALFORMED[case]
    path = write(tmp_path, mutate(TINY))
    with pytest.raises(DancenetError, match=problem) as caught:
        forward_kinematics(parse_bvh(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(DancenetError, match="no such file"):
        parse_bvh(tmp_path / "absent.bvh")


def test_resample_interpolates_linearly_by_timestamps():
    source = np.random.default_rng(0).normal(size=(101, 2, 3))
    result = resample(source, source_fps=50, fps=30)
    assert len(result) == math.floor(100 / 50 * 30) + 1
    times = np.arange(len(result)) / 30
    for joint in range(2):
        for axis in range(3):
            expected = np.interp(times, np.arange(101) / 50, source[:, joint, axis])
            np.testing.assert_allclose(result[:, joint, axis], expected, atol=1e-12)


def test_iter_clips_resamples_60_to_30_fps(tmp_path):
    path = write_synthetic_bvh(tmp_path / "dance.bvh", frames=240, fps=60)
    (clip,) = iter_clips(path, PrepareOptions(height=60, width=104, fps=30))
    kept = 240 - CALIBRATION_FRAMES
    assert clip.total == (kept - 1) // 2 + 1
    assert clip.joints.shape == (clip.total, len(JOINT_NAMES), 3) and clip.joints.dtype == np.float32
    expected = synthetic_positions(240, 60)[CALIBRATION_FRAMES::2]  # every second 60 fps frame
    np.testing.assert_allclose(clip.joints, expected, atol=1e-3)
    assert (clip.name, clip.source, clip.segmentation) == ("dance", str(path), "render-front")
    assert clip.source_fps == pytest.approx(60) and clip.joint_names == list(JOINT_NAMES)
    masks = list(clip.masks)
    assert len(masks) == clip.total and masks[0].shape == (60, 104) and masks[0].dtype == bool


def test_iter_clips_source_fps_overrides_the_header(tmp_path):
    # Like the shared salsa files: the header claims 120 fps, the true rate is 60.
    path = write_synthetic_bvh(tmp_path / "dance.bvh", frames=240, fps=60, frame_time=1 / 120)
    kept = 240 - CALIBRATION_FRAMES
    (from_header,) = iter_clips(path, PrepareOptions(fps=30))
    assert from_header.source_fps == pytest.approx(120) and from_header.total == (kept - 1) // 4 + 1
    (overridden,) = iter_clips(path, PrepareOptions(fps=30, source_fps=60))
    assert overridden.source_fps == 60 and overridden.total == (kept - 1) // 2 + 1


def test_iter_clips_keeps_every_frame_of_a_short_take(tmp_path):
    path = write_synthetic_bvh(tmp_path / "short.bvh", frames=20, fps=30)
    (clip,) = iter_clips(path, PrepareOptions(fps=30))
    assert clip.total == 20
    np.testing.assert_allclose(clip.joints, synthetic_positions(20, 30), atol=1e-3)


def test_iter_clips_reads_a_folder_in_name_order(tmp_path):
    for name in ("b_take", "a_take"):
        write_synthetic_bvh(tmp_path / f"{name}.bvh", frames=30, fps=30)
    (tmp_path / "notes.txt").write_text("not motion capture")
    clips = list(iter_clips(tmp_path, PrepareOptions(view="side")))
    assert [clip.name for clip in clips] == ["a_take", "b_take"]
    assert clips[0].segmentation == "render-side" and clips[0].extra["view"] == "side"


def test_iter_clips_rejects_a_folder_without_bvh_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not motion capture")
    with pytest.raises(DancenetError, match=r"holds no \.bvh files"):
        list(iter_clips(tmp_path, PrepareOptions()))


def test_iter_clips_names_the_bad_file_in_a_folder(tmp_path):
    write_synthetic_bvh(tmp_path / "a_good.bvh", frames=30, fps=30)
    bad = tmp_path / "b_bad.bvh"
    bad.write_text(bvh_text(frames=30, fps=30).rsplit("\n", 3)[0] + "\n")
    with pytest.raises(DancenetError, match=f"^{bad}: line .*truncated"):
        list(iter_clips(tmp_path, PrepareOptions()))


@pytest.mark.parametrize("frame_time, fps", [("0.008333", 120.0), ("0.0333333", 30.0), ("0.033367", 1 / 0.033367)])
def test_header_fps_undoes_the_rounding_of_frame_time(tmp_path, frame_time, fps):
    motion = parse_bvh(write(tmp_path, TINY.replace("Frame Time: 0.5", f"Frame Time: {frame_time}")))
    assert motion.fps == fps


def test_iter_clips_rejects_a_skeleton_without_bones(tmp_path):
    lonely = TINY.split("  JOINT a")[0] + "}\nMOTION\nFrames: 1\nFrame Time: 0.5\n0 0 0 0 0 0\n"
    path = write(tmp_path, lonely)
    assert parse_bvh(path).skeleton.joint_count == 1
    with pytest.raises(DancenetError, match="no bone to draw"):
        list(iter_clips(path, PrepareOptions()))
