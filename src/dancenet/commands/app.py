"""``dancenet app``: the web page (``dancenet.app``; needs ``pip install 'dancenet[app]'``)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  dancenet app                      # the bundled salsa model; open http://127.0.0.1:7860
  dancenet app runs/me              # your own run, ready on the Dance tab
  dancenet app --host 0.0.0.0 --port 8080 --runs /srv/dancenet-runs

Dance: generate and download dances (mp4 or GIF). Train: upload a video, check the silhouettes,
train with a time budget, watch it learn (you may close the page meanwhile). Evaluate: the report
of a run, as `dancenet evaluate` writes it. Models trained in the page go to --runs.
"""


def register(commands, train_commands, common) -> None:
    parser = commands.add_parser(
        "app", parents=[common], help="a web page to make dances, train on your video, and evaluate",
        description="Serve dancenet's web app (Gradio) on this computer.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default=None, metavar="RUN",
                        help="a trained run to offer first (default: the bundled salsa model)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only; "
                             "0.0.0.0 lets others on your network in)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--runs", default="runs", metavar="DIR",
                        help="folder for models trained in the page (default ./runs)")
    parser.set_defaults(handler=run_app)


def run_app(args) -> int:
    from ..errors import DancenetError

    if not 0 < args.port < 65536:
        raise DancenetError(f"--port {args.port}: must be between 1 and 65535")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise DancenetError("the app needs Gradio: pip install 'dancenet[app]'") from None
    from ..app import launch

    if not args.quiet:
        print(f"dancenet app: open http://{args.host}:{args.port} in a browser (Ctrl-C stops it)")
    launch(args.run, host=args.host, port=args.port, runs=args.runs)
    return 0
