"""``dancenet generate``: a new dance video from a run (or the bundled model)."""

from __future__ import annotations

import argparse

EPILOG = """\
output (by extension): .mp4 (H.264), .gif, or a name without extension for a folder of PNGs.

examples:
  dancenet generate -o dance.mp4                           # the bundled salsa model, 60 s
  dancenet generate runs/me -o dance.mp4 --seconds 30 --seed 3
  dancenet generate runs/me -o calm.mp4 --temperature 0.7 --sigma-temperature 0.5
  dancenet generate runs/me -o next.mp4 --prime take01:120 # continue take01 after its frame 120
  dancenet generate runs/me -o frames/ --seconds 5 --scale 1
  dancenet generate -o dance.mp4 --music song.mp3          # dance to a song, as long as the song

music (--music, needs pip install 'dancenet[music]'): wav, mp3, flac or ogg. The dance is re-timed
so that its pauses and turns land on the song's beats and the mp4 carries the song (AAC); GIF and
PNG outputs are silent. Songs are capped at 20 minutes (--seconds takes the start of a longer one).

temperatures: --temperature divides the mixture logits (lower = the most likely movement more
often); --sigma-temperature scales each component's spread (lower = smoother, less jitter);
--noise-correlation lets each frame's variation carry into the next (higher = fewer replayed
and repeated moves, a few more broken limbs); --component-correlation sets how long the dancer
keeps to one kind of movement (0: she may switch at every step, which makes a dancer trained
on little footage jitter; 0.6 calms her). A model trained with rollout checks recommends its
spread and both correlations; a given value overrides it. With --music the component
correlation is 0 unless given (at 0.6 dances landed on fewer beats).

whole bodies, no replays: a frame whose body comes apart (pieces away from the dancer), one
that would make the last second replay an earlier second of the dance (a loop), or one that
copies a frame of the training footage, is drawn again, up to --retries times (default 7);
--retries 0 keeps every draw, as dancenet-2018 models do by default.
The same seed and options give the same file, byte for byte.
"""


def register(commands, train_commands, common) -> None:
    from ..paths import name_type

    parser = commands.add_parser(
        "generate", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG, help="generate a dance video",
        description="Generate a new dance video by sampling the motion model and decoding its "
                    "latents with the VAE; any length, streamed to the output.")
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="run directory with vae.* and motion.* (default: the bundled model)")
    parser.add_argument("--output", "-o", required=True, help="dance.mp4, dance.gif or a folder")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length (default 60, or the song's length with --music)")
    parser.add_argument("--music", metavar="SONG", help="dance to SONG (.wav .mp3 .flac .ogg) and put it in the mp4")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="mixture-weight temperature, > 0 (default: the model's recommended "
                             "value, chosen by measurement when it was trained; else 1.0)")
    parser.add_argument("--sigma-temperature", type=float, default=None,
                        help="spread temperature, > 0 (default: the model's recommended value, "
                             "else 1.0; ignored by dancenet-2018)")
    parser.add_argument("--noise-correlation", type=float, default=None, metavar="R",
                        help="how much of each frame's random variation carries into the next, 0 to below 1 "
                             "(0: a fresh draw every frame; 0.7: slower variation that strays further from "
                             "the training dance; default: the model's recommended value, else 0; "
                             "ignored by dancenet-2018)")
    add_component_correlation_argument(parser)
    add_retries_argument(parser)
    parser.add_argument("--prime", metavar="CLIP[:FRAME]",
                        help="start from the real latents of CLIP up to FRAME (0-based)")
    parser.add_argument("--scale", type=int, default=4, help="upscale factor for viewing (default 4)")
    parser.add_argument("--interpolation", default="nearest", choices=("nearest", "bilinear"),
                        help="upscaling filter (default nearest: crisp silhouettes)")
    parser.add_argument("--motion", default="motion", metavar="NAME", type=name_type("--motion"),
                        help="motion model inside RUN (default motion -> RUN/motion.*)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.set_defaults(handler=run_generate)


def add_retries_argument(parser) -> None:
    """``--retries`` (whole-body sampling), shared by generate and evaluate."""
    parser.add_argument("--retries", type=int, default=None, metavar="N",
                        help="draw a frame whose body comes apart or melts into a shape unlike any "
                             "of the footage, that replays an earlier second of the dance or that copies a "
                             "training frame, again, up to N times, then, if all failed, up to N times more "
                             "at wider spreads (default 7; 0: keep every draw, 2x faster; dancenet-2018 "
                             "models default to 0)")


def add_component_correlation_argument(parser) -> None:
    """``--component-correlation``, shared by generate and evaluate."""
    from ..generate import COMPONENT_CORRELATION

    parser.add_argument("--component-correlation", type=float, default=None, metavar="R",
                        help="how long the dancer keeps to one kind of movement, 0 to below 1 (default: "
                             f"the model's, else {COMPONENT_CORRELATION:g}; with --music: {COMPONENT_CORRELATION:g} "
                             "unless given. 0: she may switch at every step, "
                             "which makes a dancer trained on little footage jitter; 0.6 calms her; 0.9 "
                             "nearly freezes the dance; ignored by dancenet-2018)")


def run_generate(args) -> int:
    import sys
    import time

    from ..errors import DancenetError
    from ..generate import check_correlation, check_options, check_retries, load
    from ..limits import check_video_size
    from ..paths import check_output, run_files
    from ..video import check_writable

    check_options(60.0 if args.seconds is None else args.seconds,
                  1.0 if args.temperature is None else args.temperature,
                  1.0 if args.sigma_temperature is None else args.sigma_temperature)
    if args.noise_correlation is not None:
        check_correlation(args.noise_correlation)
    if args.component_correlation is not None:
        check_correlation(args.component_correlation, "--component-correlation")
    if args.retries is not None:
        check_retries(args.retries)
    if args.scale < 1:
        raise DancenetError(f"--scale {args.scale}: must be a whole number >= 1")
    if not 0 <= args.seed < 2**63:
        raise DancenetError(f"--seed {args.seed}: must be a whole number from 0 to 2**63 - 1")
    check_output(args.output, run_files(args.run, ("vae", args.motion)), "-o")
    check_writable(args.output)
    started = time.perf_counter()
    music = None
    if args.music is not None:  # read and check the song before loading models
        from ..music import load_music
        from ..video import output_format

        music = load_music(args.music, args.seconds)
        if output_format(args.output) != "mp4" and not args.quiet:
            print(f"dancenet: note: {args.output}: GIF and PNG carry no audio; the dance follows "
                  f"{args.music} but only an .mp4 plays it", file=sys.stderr)
        if args.seconds is not None and args.seconds > music.duration + 0.5 and not args.quiet:
            print(f"dancenet: note: {args.music} lasts {music.duration:.1f} s; the last "
                  f"{args.seconds - music.duration:.1f} s of the dance are silent", file=sys.stderr)
    dancer = load(args.run, device=args.device, motion_name=args.motion)
    if args.noise_correlation is not None:
        dancer.noise_correlation = args.noise_correlation
    if args.component_correlation is not None:
        dancer.component_correlation = args.component_correlation
    elif music is not None and not args.quiet:
        drawn = dancer.component_correlation_for(music=True)
        if drawn != dancer.component_correlation:
            print(f"dancenet: note: this model recommends --component-correlation {dancer.component_correlation:g}; "
                  f"a dance to music draws at {drawn:g} unless you give it (at 0.6 dances landed on fewer "
                  "beats)", file=sys.stderr)
    if args.retries is not None:
        dancer.retries = args.retries
    if dancer.retries and not args.quiet:
        _say_where_the_footage_comes_from(dancer)
    check_video_size(dancer.width * args.scale, dancer.height * args.scale, f"--scale {args.scale}")
    path = dancer.write(args.output, seconds=args.seconds, seed=args.seed,
                        temperature=args.temperature, sigma_temperature=args.sigma_temperature,
                        prime=args.prime, scale=args.scale, interpolation=args.interpolation,
                        quiet=args.quiet, music=music)
    if not args.quiet:
        seconds = args.seconds if args.seconds is not None else (music.duration if music else 60.0)
        frames = dancer.frame_count(seconds)
        if music is not None:
            print(f"music: {args.music}: {music.tempo:.1f} bpm, {len(music.beats)} beats")
        elapsed = time.perf_counter() - started
        print(f"wrote {path}: {frames} frames at {dancer.fps:g} fps "
              f"({dancer.width * args.scale}x{dancer.height * args.scale}) in {elapsed:.1f} s")
    return 0


def _say_where_the_footage_comes_from(dancer) -> None:
    """A note when the copy guard is slower or off: the run keeps no training frames (a run from
    before the guard) or keeps frames made for another VAE, dataset or held-out clips, so they
    are decoded from latents.npz; or it has neither frames nor latents of this VAE. Loads the
    frames now (generation reads them anyway), so the note comes before the progress bar."""
    import sys

    from ..copies import library_path

    copies = dancer.copies
    source = None if copies is None else copies.source
    decoding = "decoding the training frames from latents.npz, a few seconds each time"
    why = {None: f"{dancer.directory} keeps no training frames of this VAE's footage; generating "
                 "without the copy guard",
           "latents": f"{dancer.directory} keeps no training frames for the copy guard (a run from "
                      f"before it); {decoding}",
           "stale": f"{library_path(dancer.directory, dancer.name)} was made for another VAE, dataset "
                    f"or held-out clips (a motion training stopped before its end?); {decoding}"}.get(source)
    if why:
        print(f"dancenet: note: {why}", file=sys.stderr)
