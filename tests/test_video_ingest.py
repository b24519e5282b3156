"""Video files to silhouettes (dancenet.ingest.video): rendered dancers composited onto a blue
screen, a static textured noisy flickering background, and black, encoded with PyAV, come back."""

import av
import numpy as np
import pytest

from dancenet.errors import DancenetError
from dancenet.ingest import PrepareOptions, prepare
from dancenet.ingest.segment import fit_mask
from tests.synthetic import render_synthetic_dancer
from tests.synthetic_footage import write_video as encode_video

FRAMES, SOURCE_HEIGHT, SOURCE_WIDTH = 48, 240, 512
HEIGHT, WIDTH = 120, 208


def write_video(path, frames, fps=30, codec="libx264"):
    """Encode (T, H, W, 3) uint8 RGB frames at high quality (x264 crf 12, yuv420p)."""
    return encode_video(path, frames, fps, codec=codec, crf=12)


def composite(masks, backdrop, dancer_colour):
    """Dancer pixels painted ``dancer_colour`` over ``backdrop`` ((T, H, W, 3) float)."""
    frames = np.where(masks[..., None], np.float32(dancer_colour), backdrop)
    return np.clip(frames, 0, 255).astype(np.uint8)


def textured_backdrop(frames, height, width, generator):
    """A static textured room: smooth colour blobs plus tiles, lit by a flickering lamp, with
    sensor noise: (frames, height, width, 3) float."""
    coarse = generator.uniform(40, 170, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    from PIL import Image
    blobs = np.stack([np.asarray(Image.fromarray(coarse[..., channel]).resize(
        (width + 32, height + 32), Image.Resampling.BILINEAR))[:height, :width]
        for channel in range(3)], axis=-1)
    rows, columns = np.mgrid[:height, :width]
    tiles = 25.0 * ((rows // 20 + columns // 20) % 2)[..., None]
    flicker = 1 + 0.05 * np.sin(np.arange(frames) * 1.7)[:, None, None, None]
    noise = generator.normal(0, 3, (frames, height, width, 3)).astype(np.float32)
    return (blobs + tiles)[None] * flicker + noise


def travelling_dancer(frames, height, width):
    """(frames, height, width) bool: the rendered dancer crossing the stage from left to right.

    A static-camera background model needs every spot to show the background for most of the
    clip, as it does when a dancer moves about a stage (one dancing on the spot is out of reach).
    """
    stage_width = 200
    dancer = render_synthetic_dancer(frames, height, stage_width)
    masks = np.zeros((frames, height, width), dtype=bool)
    for index, offset in enumerate(np.linspace(0, width - stage_width, frames).round().astype(int)):
        masks[index, :, offset:offset + stage_width] = dancer[index]
    return masks


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """The ground-truth masks and three videos of the same rendered dance."""
    directory = tmp_path_factory.mktemp("videos")
    generator = np.random.default_rng(0)
    masks = travelling_dancer(FRAMES, SOURCE_HEIGHT, SOURCE_WIDTH)
    shape = (FRAMES, SOURCE_HEIGHT, SOURCE_WIDTH, 3)
    blue = composite(masks, np.broadcast_to(np.float32([20, 60, 200]), shape), (235, 225, 215))
    # Light clothes: in 4:2:0 video an outline drawn by colour alone is blurred over two pixels.
    textured = composite(masks, textured_backdrop(FRAMES, SOURCE_HEIGHT, SOURCE_WIDTH, generator),
                         (235, 215, 190))
    black = composite(masks, np.zeros(shape, np.float32), (255, 255, 255))
    return {
        "masks": masks,
        "blue": write_video(directory / "blue.mp4", blue),
        "textured": write_video(directory / "textured.mp4", textured),
        "black": write_video(directory / "black.mp4", black),
    }


def intersection_over_union(predicted, truth):
    """(T,) IoU per frame of two (T, H, W) bool stacks."""
    return (predicted & truth).sum(axis=(1, 2)) / np.maximum((predicted | truth).sum(axis=(1, 2)), 1)


def expected_masks(masks):
    return np.stack([fit_mask(mask, HEIGHT, WIDTH) for mask in masks])


@pytest.mark.parametrize("scene, segment", [("blue", "chroma"), ("textured", "background"),
                                            ("black", "threshold")])
def test_segmentation_recovers_the_rendered_dancer(scenes, tmp_path, scene, segment):
    dataset = prepare([scenes[scene]], tmp_path / "data",
                      PrepareOptions(height=HEIGHT, width=WIDTH, segment=segment, quiet=True,
                                     framing="full"))
    assert len(dataset) == FRAMES and dataset.clips[0].segmentation == segment
    assert dataset.clips[0].name == scene and dataset.clips[0].source_fps == 30
    frames = dataset.frames(0, len(dataset)).astype(bool)
    iou = intersection_over_union(frames, expected_masks(scenes["masks"]))
    assert iou.min() >= 0.95, f"{scene}/{segment}: IoU min {iou.min():.3f} mean {iou.mean():.3f}"


@pytest.mark.parametrize("scene, method", [("blue", "chroma"), ("textured", "background"),
                                           ("black", "threshold")])
def test_auto_picks_the_method_for_the_footage(scenes, tmp_path, scene, method):
    dataset = prepare([scenes[scene]], tmp_path / "data",
                      PrepareOptions(height=HEIGHT, width=WIDTH, segment="auto", quiet=True))
    assert dataset.clips[0].segmentation == method
    assert dataset.clips[0].extra["segment_reason"]


def test_resampling_by_timestamps_halves_sixty_fps(tmp_path):
    """60 fps in, 30 fps out: every other source frame, each distinct frame where it belongs."""
    frames = np.zeros((20, 64, 96, 3), np.uint8)
    for index in range(20):
        frames[index, 8:56, 4 * index:4 * index + 8] = 255  # a bar stepping right
    video = write_video(tmp_path / "steps.mp4", frames, fps=60)
    dataset = prepare([video], tmp_path / "data",
                      PrepareOptions(height=32, width=48, fps=30, segment="threshold", quiet=True,
                                     framing="full"))
    assert len(dataset) == 10 and dataset.clips[0].source_fps == 60
    truth = expected_masks_for(frames[::2, ..., 0] > 127, 32, 48)
    assert intersection_over_union(dataset.frames(0, 10).astype(bool), truth).min() > 0.9


def test_gif_upsampled_to_the_target_rate(tmp_path):
    """A 10 fps GIF at 30 fps shows each GIF frame three times."""
    frames = np.zeros((5, 48, 64, 3), np.uint8)
    for index in range(5):
        frames[index, 10:40, 10 * index:10 * index + 12] = 255
    path = tmp_path / "steps.gif"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("gif", rate=10)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "rgb8"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    dataset = prepare([path], tmp_path / "data",
                      PrepareOptions(height=24, width=32, fps=30, segment="threshold", quiet=True,
                                     framing="full"))
    assert len(dataset) == 15
    shown = dataset.frames(0, 15).astype(bool)
    truth = expected_masks_for(frames[..., 0] > 127, 24, 32)
    for index, frame in enumerate(shown):  # output k shows GIF frame k // 3, not a neighbour
        overlap = intersection_over_union(np.broadcast_to(frame, truth.shape), truth)
        assert overlap.argmax() == index // 3 and overlap.max() > 0.8


def expected_masks_for(masks, height, width):
    return np.stack([fit_mask(mask, height, width) for mask in masks])


def assert_refused(tmp_path, path, *words):
    out = tmp_path / "data"
    with pytest.raises(DancenetError) as caught:
        prepare([path], out, PrepareOptions(height=32, width=48, quiet=True))
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for word in words:
        assert word in message.removeprefix(f"{path}: ")
    assert not out.exists()


def test_garbage_named_mp4_is_refused(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_refused(tmp_path, path, "cannot be read as a video")


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_video_is_refused(tmp_path, faststart):
    """Cut in half: without its index at the end (plain mp4), or mid-frames (index up front)."""
    frames = np.random.default_rng(0).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_refused(tmp_path, path, "truncated" if faststart else "cannot be read as a video")


def silent_audio_frame():
    """A tenth of a second of silence at 8 kHz, to give a file packets but no pictures."""
    audio_frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    audio_frame.sample_rate = 8000
    return audio_frame


def test_video_without_frames_is_refused(tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.height, video.width, video.pix_fmt = 48, 64, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=8000)
        container.mux(audio.encode(silent_audio_frame()))
        container.mux(audio.encode())
    assert_refused(tmp_path, path, "no video frames")


def test_audio_only_file_is_refused(tmp_path):
    path = tmp_path / "song.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        container.mux(stream.encode(silent_audio_frame()))
        container.mux(stream.encode())
    assert_refused(tmp_path, path, "no video stream")
