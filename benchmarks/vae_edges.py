"""Where a VAE's reconstruction misses lie, and how precisely the dancer's limbs must sit for an IoU.

    python benchmarks/vae_edges.py [RUN ...] [--data data/salsa] [--clip 61_07] [--frames 300]

1. Each run's misses (RUN defaults to the bundled model; several runs print side by side): for
   ``--frames`` frames spread over the clip, the posterior mean's reconstruction against the
   frame, each missed pixel counted by its distance to the silhouette's boundary ("within 1 px":
   the band of the frame's dilation less its erosion, 4-neighbour), and the IoU the
   reconstruction would have with half of its boundary misses fixed, or all of them.
2. For a clip that ``dancenet prepare`` drew from motion capture (its joints are in the dataset
   and its BVH take is where the manifest says), the renderer's own precision: the clip's poses
   drawn again (checked to give the dataset's frames bit for bit), then with every joint's pixel
   position moved by independent Gaussian noise of sigma px per axis, and the IoU between the two.
   It calibrates IoU against joint placement; a decoder's errors are not such noise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

SIGMAS = (0.1, 0.25, 0.5, 0.75, 1.0)


def iou(predicted, frames):
    """Mean IoU of bool (n, H, W) numpy stacks, as training and evaluate measure it
    (``vae.loss.intersection_over_union``: two empty frames agree)."""
    import torch

    from dancenet.vae.loss import intersection_over_union

    return intersection_over_union(torch.from_numpy(predicted), torch.from_numpy(frames)).mean().item()


def boundary_bands(frames, widths=(1, 2)):
    """(n, H, W) bool frames -> {width: (n, H, W) bool}: pixels within ``width`` px of the
    silhouette's boundary, on either side."""
    import numpy as np
    from scipy import ndimage

    bands = {width: np.zeros_like(frames) for width in widths}
    for index, frame in enumerate(frames):
        for width in widths:
            bands[width][index] = (ndimage.binary_dilation(frame, iterations=width)
                                   & ~ndimage.binary_erosion(frame, iterations=width))
    return bands


def reconstruction_misses(vae, frames) -> dict:
    """A VAE's misses on (n, H, W) bool frames, reconstructed from the posterior mean: the mean
    IoU, the shares of missed pixels within 1 and 2 px of the boundary, and the mean IoU with half
    or all of the boundary misses fixed (a fixed false positive leaves the union, a fixed false
    negative joins the intersection)."""
    import numpy as np
    import torch

    predicted = []
    batch_size = vae.config.inference_batch_size
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            batch = vae.prepare_frames(torch.from_numpy(frames[start:start + batch_size].astype(np.uint8)))
            predicted.append(vae.silhouettes(vae.encode_moments(batch)[0]).cpu().numpy())
    predicted = np.concatenate(predicted)
    intersection = (predicted & frames).sum(axis=(1, 2))
    union = np.maximum((predicted | frames).sum(axis=(1, 2)), 1)
    misses = predicted ^ frames
    bands = boundary_bands(frames)
    false_positive = (misses & predicted & bands[1]).sum(axis=(1, 2))
    false_negative = (misses & frames & bands[1]).sum(axis=(1, 2))

    def fixed(share):
        return np.mean((intersection + share * false_negative) / (union - share * false_positive))

    return {"iou": iou(predicted, frames),
            "within_1": (misses & bands[1]).sum() / max(misses.sum(), 1),
            "within_2": (misses & bands[2]).sum() / max(misses.sum(), 1),
            "half_fixed": fixed(0.5), "all_fixed": fixed(1.0),
            "dancer": frames.sum(axis=(1, 2)).mean(), "band": bands[1].sum(axis=(1, 2)).mean()}


def renderer_precision(dataset, clip, sigmas, seed=0):
    """{sigma: mean IoU} of the clip's poses drawn with each joint moved by N(0, sigma) px per
    axis, against the exact drawing; None (and the reason) when the clip was not drawn from
    motion capture that is still here. Raises if the exact drawing is not the dataset's."""
    import numpy as np

    from dancenet.ingest import render
    from dancenet.ingest.bvh import parse_bvh

    source = Path(clip.source)
    if dataset.joints is None or not clip.segmentation.startswith("render-"):
        return None, f"clip {clip.name} was not drawn from motion capture"
    if not source.is_file():
        return None, f"its take {source} is not here"
    skeleton = parse_bvh(source).skeleton
    positions = np.asarray(dataset.joints[clip.start:clip.stop])      # (frames, joints, 3) float32
    project = render.Camera.project

    def draw(sigma):
        generator = np.random.default_rng(seed)

        def jittered(self, points):
            pixels = project(self, points)
            return pixels + generator.normal(0.0, sigma, pixels.shape) if sigma else pixels

        render.Camera.project = jittered
        try:
            return np.stack(list(render.render_silhouettes(positions, skeleton.parents, skeleton.names,
                                                           dataset.height, dataset.width,
                                                           view=clip.extra.get("view", "front"))))
        finally:
            render.Camera.project = project

    exact = draw(0.0)
    if not np.array_equal(exact, dataset.clip_frames(clip).astype(bool)):
        raise SystemExit(f"{source}: drawn again, its poses do not give the dataset's frames")
    return {sigma: iou(draw(sigma), exact) for sigma in sigmas}, f"{source}, {len(exact)} frames"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="runs with a VAE (default: the bundled model)")
    parser.add_argument("--data", default="data/salsa", help="prepared dataset holding the clip")
    parser.add_argument("--clip", default="61_07", help="clip to measure (default: the held-out take)")
    parser.add_argument("--frames", type=int, default=300, help="frames of the clip the VAEs reconstruct, "
                                                                "spread evenly")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames {args.frames}: must be >= 1")

    from dancenet.runtime import configure

    configure()
    import numpy as np
    import torch

    from dancenet.dataset import Dataset
    from dancenet.generate import bundled_directory
    from dancenet.vae.encode import load

    dataset = Dataset(args.data)
    clip = dataset.clip(args.clip)
    frames = dataset.clip_frames(clip)
    frames = frames[np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int)]
    frames = frames.astype(bool)
    print(f"{dataset.path} clip {clip.name}, {len(frames)} frames: {frames.sum(axis=(1, 2)).mean():.0f} "
          f"dancer pixels a frame; torch {torch.get_num_threads()} threads")
    print("| VAE | IoU | misses within 1 px of the boundary | within 2 px | IoU, half of those fixed "
          "| all fixed |")
    print("|---|---:|---:|---:|---:|---:|")
    for run in args.runs or [None]:
        result = reconstruction_misses(load(run or bundled_directory()), frames)
        print(f"| {run or 'bundled'} | {result['iou']:.4f} | {result['within_1']:.1%} | "
              f"{result['within_2']:.1%} | {result['half_fixed']:.4f} | {result['all_fixed']:.4f} |")
    ious, what = renderer_precision(dataset, clip, SIGMAS)
    if ious is None:
        print(f"\nno renderer table: {what}")
        return 0
    print(f"\nthe renderer, {what} at {dataset.width}x{dataset.height}: every joint moved by "
          f"N(0, sigma) px per axis")
    print("| sigma (px) | " + " | ".join(f"{sigma:g}" for sigma in SIGMAS) + " |")
    print("|---|" + "---:|" * len(SIGMAS))
    print("| IoU | " + " | ".join(f"{ious[sigma]:.3f}" for sigma in SIGMAS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
