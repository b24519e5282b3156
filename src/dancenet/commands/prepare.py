"""``dancenet prepare``, ``dancenet info`` and ``dancenet preview``: build and inspect datasets."""

from __future__ import annotations

import argparse
import json

PREPARE_EPILOG = """\
sources:
  a video file        mp4, avi, mov, mkv, webm, gif (anything PyAV decodes): one dancer, a
                      static camera (a moving camera is out of scope); with --segment person
                      other people in view are dropped, the most central dancer kept
  a folder of images  e.g. the DanceNet 2018 layout imgs/1.jpg, imgs/2.jpg, ... (numeric order)
  BVH motion capture  a .bvh file or a folder of them, rendered as body-like silhouettes

segmentation (--segment), for videos and images:
  person      a learned person segmenter (MediaPipe, an optional extra: pip install
              'dancenet[person]'): one dancer in an ordinary room, on a stage, outdoors;
              other people and objects are dropped, short losses mended from neighbours
  threshold   grayscale > 20 is the dancer (footage that already is a white-on-black silhouette)
  chroma      key out a uniform backdrop colour estimated from the frame borders (blue/green screen)
  background  static camera: a background model (per-pixel median of sampled frames); the dancer
              must move around the frame, since a spot the dancer covers most of the time is
              taken for background: use chroma for a dancer staying on one spot
  auto        inspect the footage, pick one of the above and say which (default): threshold
              for a black backdrop, chroma for a uniform screen, else person when installed
              and it finds her, else background

framing (--framing):
  dancer      zoom once per clip so her standing height fills ~80% of the frame height,
              following her travel slowly (default for videos)
  full        the whole frame, resized (DanceNet 2018; default for image folders)

examples:
  dancenet prepare dance.mp4 --out data/me
  dancenet prepare dance.mp4 --out data/me --segment person --framing full
  dancenet prepare imgs/ --out data/dancenet2018 --segment threshold --source-fps 30
  dancenet prepare ../shared/data/cmu61-salsa-bvh --out data/salsa --source-fps 60
"""


def register(commands, train_commands, common) -> None:
    from ..ingest import FRAMINGS, SEGMENT_METHODS, VIEWS

    formatter = argparse.RawDescriptionHelpFormatter
    prepare = commands.add_parser(
        "prepare", parents=[common], formatter_class=formatter, epilog=PREPARE_EPILOG,
        help="turn videos, image folders or BVH files into a dataset of silhouettes",
        description="Turn videos, image folders or BVH motion capture into a dataset of dancer "
                    "silhouettes (white dancer on black), written atomically to --out.")
    prepare.add_argument("sources", nargs="+", metavar="SOURCE", help="video, image folder, BVH file or folder")
    prepare.add_argument("--out", "-o", required=True, metavar="DATASET", help="dataset directory to write")
    prepare.add_argument("--fps", type=float, default=30.0, help="frame rate of the dataset (default 30)")
    prepare.add_argument("--size", default="208x120", metavar="WxH",
                         help="frame size, width x height (default 208x120, as DanceNet 2018)")
    prepare.add_argument("--segment", default="auto", choices=SEGMENT_METHODS,
                         help="how to separate the dancer from the background (default auto)")
    prepare.add_argument("--framing", default=None, choices=FRAMINGS,
                         help="dancer: zoom on the dancer; full: the whole frame (default dancer "
                              "for videos, full for image folders)")
    prepare.add_argument("--view", default="front", choices=VIEWS, help="camera for BVH rendering (default front)")
    prepare.add_argument("--source-fps", type=float, default=None, metavar="FPS",
                         help="real frame rate of the source when its header is wrong (BVH) or "
                              "absent (image folders)")
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    prepare.set_defaults(handler=run_prepare)

    info = commands.add_parser("info", parents=[common], help="show clips, frames, fps, size and foreground statistics",
                               description="Summarise a prepared dataset.",
                               epilog="example:\n  dancenet info data/salsa", formatter_class=formatter)
    info.add_argument("dataset", metavar="DATASET")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(handler=run_info)

    preview = commands.add_parser("preview", parents=[common], help="write a contact sheet of frames across the clips",
                                  description="Write a PNG contact sheet: frames sampled evenly across every clip.",
                                  epilog="example:\n  dancenet preview data/salsa -o sheet.png", formatter_class=formatter)
    preview.add_argument("dataset", metavar="DATASET")
    preview.add_argument("--output", "-o", default="sheet.png", help="PNG to write (default sheet.png)")
    preview.add_argument("--per-clip", type=int, default=8, help="frames shown per clip (default 8)")
    preview.set_defaults(handler=run_preview)


def run_prepare(args) -> int:
    import sys
    import time

    from ..ingest import PrepareOptions, choices_made, parse_size, prepare

    height, width = parse_size(args.size)
    options = PrepareOptions(height=height, width=width, fps=args.fps, segment=args.segment,
                             view=args.view, source_fps=args.source_fps, quiet=args.quiet,
                             framing=args.framing)
    started = time.perf_counter()
    dataset = prepare(args.sources, args.out, options, overwrite=args.overwrite)
    warnings, notes = choices_made(dataset, args.segment)
    for warning in warnings:
        print(f"dancenet: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        elapsed = time.perf_counter() - started
        methods = sorted({clip.segmentation for clip in dataset.clips})
        for note in notes:
            print(note)
        print(f"wrote {dataset.path}: {len(dataset.clips)} clips, {len(dataset)} frames "
              f"({len(dataset) / dataset.fps:.1f} s at {dataset.fps:g} fps), {width}x{height}, "
              f"segmentation {', '.join(methods)}, in {elapsed:.1f} s")
    return 0


def run_info(args) -> int:
    from ..dataset import Dataset

    summary = Dataset(args.dataset).describe()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['path']}: {summary['clips']} clips, {summary['frames']} frames, "
          f"{summary['seconds']:.1f} s at {summary['fps']:g} fps, {summary['size']}")
    print(f"foreground: mean {summary['foreground_mean']:.1%}, min {summary['foreground_min']:.1%}, "
          f"max {summary['foreground_max']:.1%}; empty frames in sample: {summary['empty_frames_sampled']}; "
          f"joints: {'yes' if summary['has_joints'] else 'no'}")
    width = max(len(clip["name"]) for clip in summary["per_clip"])
    for clip in summary["per_clip"]:
        print(f"  {clip['name']:<{width}}  {clip['frames']:>6} frames  {clip['segmentation']:<13} {clip['source']}")
    return 0


MAX_PER_CLIP = 1000
MAX_SHEET_PIXELS = 200_000_000


def run_preview(args) -> int:
    import numpy as np

    from ..dataset import Dataset
    from ..errors import DancenetError
    from ..sheet import save_contact_sheet

    from ..paths import check_output

    if not 1 <= args.per_clip <= MAX_PER_CLIP:
        raise DancenetError(f"--per-clip {args.per_clip}: must be from 1 to {MAX_PER_CLIP}")
    check_output(args.output, [args.dataset], "-o")
    dataset = Dataset(args.dataset)
    columns = min(args.per_clip, max(clip.length for clip in dataset.clips))
    pixels = len(dataset.clips) * (dataset.height + 1) * columns * (dataset.width + 1)
    if pixels > MAX_SHEET_PIXELS:
        raise DancenetError(f"--per-clip {args.per_clip}: a sheet of {len(dataset.clips)} clips would have "
                            f"{pixels} pixels; the limit is {MAX_SHEET_PIXELS} (lower --per-clip)")
    indices, labels = [], []
    for clip in dataset.clips:
        count = min(args.per_clip, clip.length)
        for index in np.linspace(clip.start, clip.stop - 1, num=count).astype(int):
            indices.append(index)
            labels.append(f"{clip.name} {index - clip.start}")
    frames = dataset.frames_at(indices) * 255
    save_contact_sheet(args.output, frames, columns=args.per_clip, labels=labels)
    if not args.quiet:
        print(f"wrote {args.output}: {len(indices)} frames from {len(dataset.clips)} clips")
    return 0
