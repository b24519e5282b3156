"""Where a VAE's reconstruction misses lie, and how precise a decoder must be for an IoU.

    python benchmarks/vae_edges.py [RUN] [--data data/salsa] [--clip 61_07] [--frames 300]
                                   [--bvh ../shared/data/cmu61-salsa-bvh/61_07.bvh --source-fps 60]

1. The run's misses (RUN defaults to the bundled model): for up to ``--frames`` frames spread
   over the clip, the posterior mean's reconstruction against the frame, with each missed pixel
   counted by its distance to the frame's edge (within 1 px: the band of the frame's dilation
   less its erosion), and the IoU the reconstruction would have with its edge misses halved or
   with only its misses further than 1 px.
2. With ``--bvh``, the renderer's own precision: the take's poses drawn as ``dancenet prepare``
   draws them (the dataset's frame size), then again with every joint's pixel position moved by
   Gaussian noise of sigma px, and the IoU between the two. An IoU asks that precision of a
   decoder's limbs, whatever the decoder.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

SIGMAS = (0.1, 0.25, 0.5, 0.75, 1.0)


def edge_bands(frames, widths=(1, 2)):
    """(n, H, W) bool frames -> {width: (n, H, W) bool}: pixels within ``width`` px of the edge."""
    import numpy as np
    from scipy import ndimage

    bands = {width: np.zeros_like(frames) for width in widths}
    for index, frame in enumerate(frames):
        for width in widths:
            bands[width][index] = (ndimage.binary_dilation(frame, iterations=width)
                                   & ~ndimage.binary_erosion(frame, iterations=width))
    return bands


def reconstruction_misses(vae, frames) -> dict:
    import numpy as np
    import torch

    predicted = []
    with torch.inference_mode():
        for start in range(0, len(frames), 128):
            batch = vae.prepare_frames(torch.from_numpy(frames[start:start + 128].astype(np.uint8)))
            output = vae.decode_output(vae.encode_moments(batch)[0])
            probabilities = torch.sigmoid(output) if vae.decoder.outputs_logits else output
            predicted.append((probabilities[:, 0] > 0.5).numpy())
    predicted = np.concatenate(predicted)
    intersection = (predicted & frames).sum(axis=(1, 2))
    union = (predicted | frames).sum(axis=(1, 2))
    misses = predicted ^ frames
    bands = edge_bands(frames)
    edge_misses = (misses & bands[1]).sum(axis=(1, 2))
    far_misses = (misses & ~bands[1]).sum(axis=(1, 2))
    return {"iou": np.mean(intersection / union),
            "within_1": edge_misses.sum() / misses.sum(),
            "within_2": (misses & bands[2]).sum() / misses.sum(),
            "edge_halved": np.mean(intersection / (union - 0.5 * edge_misses)),
            "far_only": np.mean(1 - far_misses / union),
            "dancer": frames.sum(axis=(1, 2)).mean(), "band": bands[1].sum(axis=(1, 2)).mean()}


def jittered_renders(bvh, source_fps, height, width, fps, sigmas, frames, seed=0):
    """{sigma: mean IoU} of the take's poses drawn with each joint moved by N(0, sigma) px."""
    import numpy as np

    from dancenet.ingest import render
    from dancenet.ingest.bvh import CALIBRATION_FRAMES, forward_kinematics, parse_bvh, resample

    motion = parse_bvh(bvh)
    positions = resample(forward_kinematics(motion)[CALIBRATION_FRAMES:], source_fps or motion.fps, fps)
    positions = positions[np.linspace(0, len(positions) - 1, min(frames, len(positions))).round().astype(int)]
    project = render.Camera.project

    def draw(sigma):
        generator = np.random.default_rng(seed)

        def jittered(self, points):
            pixels = project(self, points)
            return pixels + generator.normal(0.0, sigma, pixels.shape) if sigma else pixels

        render.Camera.project = jittered
        try:
            return np.stack(list(render.render_silhouettes(positions, motion.skeleton.parents,
                                                           motion.skeleton.names, height, width)))
        finally:
            render.Camera.project = project

    exact = draw(0.0)
    results = {}
    for sigma in sigmas:
        moved = draw(sigma)
        results[sigma] = np.mean((moved & exact).sum(axis=(1, 2)) / (moved | exact).sum(axis=(1, 2)))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default=None, help="run with a VAE (default: the bundled model)")
    parser.add_argument("--data", default="data/salsa", help="prepared dataset holding the clip")
    parser.add_argument("--clip", default="61_07", help="clip to measure (default: the held-out take)")
    parser.add_argument("--frames", type=int, default=300, help="frames, spread evenly over the clip")
    parser.add_argument("--bvh", help="the clip's BVH take: also measure the renderer's precision")
    parser.add_argument("--source-fps", type=float, help="the take's real frame rate, as given to prepare "
                                                         "(default: the BVH header's)")
    args = parser.parse_args(argv)

    from dancenet.runtime import configure

    configure()
    import numpy as np

    from dancenet.dataset import Dataset
    from dancenet.generate import bundled_directory
    from dancenet.vae.encode import load

    vae = load(args.run or bundled_directory())
    dataset = Dataset(args.data)
    frames = dataset.clip_frames(args.clip)
    frames = frames[np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int)]
    result = reconstruction_misses(vae, frames.astype(bool))
    print(f"VAE {args.run or 'bundled'} on {dataset.path} clip {args.clip}, {len(frames)} frames: "
          f"{result['dancer']:.0f} dancer pixels a frame, {result['band']:.0f} of them or their "
          f"neighbours within 1 px of the edge")
    print(f"IoU {result['iou']:.4f}; misses within 1 px of the edge {result['within_1']:.1%}, "
          f"within 2 px {result['within_2']:.1%}")
    print(f"IoU with the edge misses halved {result['edge_halved']:.4f}; "
          f"counting only misses further than 1 px {result['far_only']:.4f}")
    if args.bvh:
        height, width = dataset.height, dataset.width
        ious = jittered_renders(args.bvh, args.source_fps, height, width, dataset.fps, SIGMAS, args.frames)
        print(f"\nthe renderer, {args.bvh} at {dataset.fps:g} fps, {width}x{height}: every joint "
              f"moved by N(0, sigma) px")
        print("| sigma (px) | " + " | ".join(f"{sigma:g}" for sigma in SIGMAS) + " |")
        print("|---|" + "---:|" * len(SIGMAS))
        print("| IoU | " + " | ".join(f"{ious[sigma]:.3f}" for sigma in SIGMAS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
