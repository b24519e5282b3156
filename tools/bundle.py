"""Copy a trained run into the package as the bundled model (maintainers only).

    python tools/bundle.py RUN [--motion NAME] [--out src/dancenet/pretrained/salsa] [--prime-seconds 4]

Writes OUT/vae.safetensors + vae.json (copied byte for byte: the motion model records the VAE's
sha256), OUT/motion.safetensors (weights in float16: half the size; a rollout amplifies the rounding, so
the same seeds give other dances, which score alike: docs/motion.md, "The bundle's motion model")
+ motion.json, OUT/prime.npz (the first seconds of each clip's latents, for --prime) and
OUT/motion.library.npz (the copy guard's training frames, decoded from RUN/latents.npz by the
VAE, and as filmed where RUN/latents.npz keeps the footage). Every file is written to a temporary name and renamed (dancenet.atomic).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--motion", default="motion", help="name of the motion model in RUN")
    parser.add_argument("--out", type=Path, default=ROOT / "src/dancenet/pretrained/salsa")
    parser.add_argument("--prime-seconds", type=float, default=4.0)
    args = parser.parse_args()

    from dancenet.errors import DancenetError

    try:
        return bundle(args)
    except DancenetError as error:  # a corrupt run: one line, like the CLI
        print(f"tools/bundle.py: error: {error}", file=sys.stderr)
        return 2


def bundle(args) -> int:
    from dancenet.atomic import atomic_file
    from dancenet.checkpoint import load_pretrained, save_pretrained
    from dancenet.copies import library_path, write_library
    from dancenet.generate import load
    from dancenet.latents import write_prime_file

    for name in ("vae.safetensors", "vae.json", f"{args.motion}.safetensors", f"{args.motion}.json",
                 "latents.npz"):
        if not (args.run / name).is_file():
            print(f"tools/bundle.py: error: {args.run / name} is missing", file=sys.stderr)
            return 2
    motion = load_pretrained(args.run, args.motion, "motion")  # a bad motion model: nothing written
    dancer = load(args.run, motion_name=args.motion)  # nor a VAE and motion model that do not match
    for name in ("vae.safetensors", "vae.json"):
        with atomic_file(args.out / name) as temporary:
            shutil.copyfile(args.run / name, temporary)
    save_pretrained(args.out, "motion", "motion",
                    {key: value.half() if value.is_floating_point() else value
                     for key, value in motion.state_dict.items()}, motion.config, motion.metadata)
    write_prime_file(args.run, args.out / "prime.npz", seconds=args.prime_seconds)
    write_library(args.run, args.motion, dancer.decode, dancer.decode_chunk, library_path(args.out, "motion"))
    total = sum(path.stat().st_size for path in args.out.iterdir())
    print(f"bundled {args.run} into {args.out}: {total / 2 ** 20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
