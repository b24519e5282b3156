"""``dancenet app``: try, train and evaluate dancenet in a web page (Gradio; ``pip install 'dancenet[app]'``).

Three tabs, each calling the same public functions as the command line:

- **Dance**: :func:`dancenet.load` + ``Dancer.write`` (mp4 shown in the page, mp4 / GIF to download);
- **Train**: :func:`dancenet.pipeline.prepare_dataset` checks the footage (contact sheet), then
  ``dancenet train`` runs in a child process, so the page stays responsive, generation stays
  available, a cancel is a plain SIGINT (the run keeps a checkpoint) and a crash cannot take the
  server down. Progress is read from the run's progress.json, so it survives a page reload;
- **Evaluate**: the run's ``report/`` (as ``dancenet evaluate`` writes it), made on demand with
  :func:`dancenet.pipeline.evaluate_run`.

Only :func:`build_app` and :func:`launch` import Gradio.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from .errors import DancenetError

BUNDLED = "bundled salsa model"
MAX_UPLOAD_MB = 500
MAX_GENERATE_SECONDS = 120
SCALE = 4  # 208x120 silhouettes shown at 832x480

INTRO = """\
# dancenet
dancenet watches a dancer move, learns *how* she moves, then improvises new dances in her style:
white silhouettes on black, of any length. Every dance is generated, not played back; the
**Evaluate** tab measures how close it comes to copying the footage (short videos make copies).

**Dance** makes a dance with a trained model. **Train** teaches a new model from your own video.
**Evaluate** shows how close a model's dances come to the real dancer.
"""

DANCE_HELP = """\
Press **Generate**. *Seed* picks one of endlessly many dances (same seed, same dance).
*Temperature* is how adventurous the choice of the next move is; *spread* is how freely each move
is performed. Lower both for calmer, tidier dancing, raise them for wilder dancing. The values
shown at first are the ones measured to suit this model. *Start from* begins the dance from a
few seconds of a real recording instead of a standing start.
"""

TRAIN_HELP = """\
1. **Upload a video** of one dancer filmed by a camera that does not move (a phone on a shelf is
   fine), 1-3 minutes long.{server_paths}
2. Press **Check footage**: you see the silhouettes dancenet will learn from. The dancer should be
   white, everything else black. If it looks wrong, try another video.
3. Choose how long to train and press **Start training**. 20 minutes is a good start; longer gives
   smoother dancing. You can close this page: training goes on and this tab shows it again.
4. When it is done, the new model is in the list on the **Dance** tab.
"""

SERVER_PATHS_HELP = """ Or give the path of a video, a BVH motion-capture file or folder, or a
   folder of images on this computer."""

EVALUATE_HELP = """\
The report compares dances made by the model with real dance it did not train on: does it freeze,
loop, copy the footage, break the body apart? Lower is better for every ratio and for the Frechet
distance; the *real* column is the real dancer's own level. Definitions: docs/metrics.md.
"""


# --------------------------------------------------------------------------------------------
# models


def list_runs(runs: Path, extra: str | None = None) -> list[str]:
    """Runs that can dance: ``extra`` first, then each folder of ``runs`` with a VAE and motion model."""
    found = []
    if extra:
        found.append(str(extra))
    if runs.is_dir():
        for path in sorted(runs.iterdir()):
            if (path / "motion.json").is_file() and (path / "vae.json").is_file() \
                    and not path.name.startswith(".") and str(path) not in found:
                found.append(str(path))
    return found


class Models:
    """Loaded models by run (None: the bundled one); loading is the slow part of a first dance."""

    def __init__(self):
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, choice: str):
        import dancenet

        key = choice or BUNDLED
        with self._lock:
            if key not in self._loaded:
                if len(self._loaded) >= 3:  # bounded memory: forget the oldest
                    self._loaded.pop(next(iter(self._loaded)))
                dancer = dancenet.load(None if key == BUNDLED else key)
                dancer.generate(seconds=1, seed=0)  # warm up kernels and threads for the first dance
                self._loaded[key] = dancer
            return self._loaded[key]


def prime_choices(dancer) -> list[str]:
    """Clip names a dance can start from (from the run's latents.npz or the bundle's prime.npz)."""
    import numpy as np

    for name in ("latents.npz", "prime.npz"):
        path = Path(dancer.directory) / name
        if path.is_file():
            try:
                with np.load(path) as data:
                    return [str(clip) for clip in data["clip_names"]]
            except (OSError, KeyError, ValueError):
                return []
    return []


# --------------------------------------------------------------------------------------------
# training in a child process


class Trainer:
    """One ``dancenet train`` child process at a time; its state outlives any page."""

    def __init__(self, runs: Path, work: Path):
        self.runs, self.work = runs, work
        self.process: subprocess.Popen | None = None
        self.run: Path | None = None
        self.log: Path | None = None
        self.cancelled = False
        self._lock = threading.Lock()

    def busy(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, dataset: str | os.PathLike, name: str, minutes: float) -> Path:
        """Start training ``dataset`` (a checked, prepared dataset) into RUNS/NAME."""
        with self._lock:
            if self.busy():
                raise DancenetError(f"{self.run.name} is still training; one training at a time "
                                    "(cancel it first)")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name or ""):
                raise DancenetError("name: use letters, digits, - _ . (up to 64), e.g. maria-salsa")
            run = self.runs / name
            if run.exists():
                raise DancenetError(f"{run}: a run of that name exists; choose another name")
            if not (isinstance(minutes, (int, float)) and 0 < minutes <= 24 * 60):
                raise DancenetError("minutes: choose between 1 and 1440")
            self.runs.mkdir(parents=True, exist_ok=True)
            self.log = self.work / f"train-{name}-{uuid.uuid4().hex[:6]}.log"
            command = [sys.executable, "-m", "dancenet.cli", "train", str(dataset), "--out",
                       str(run), "--minutes", f"{minutes:g}", "--quiet"]
            with open(self.log, "w") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL,
                                                env={**os.environ, "THP_MEM_ALLOC_ENABLE": "1"})
            self.run, self.cancelled = run, False
            return run

    def cancel(self) -> None:
        """Ask the child to stop as Ctrl-C would: it saves a checkpoint and exits."""
        if self.busy():
            self.cancelled = True
            self.process.send_signal(signal.SIGINT)

    def status(self) -> dict:
        """{"state": idle|running|finished|cancelled|failed, "run", "progress", "error"}."""
        if self.process is None:
            return {"state": "idle", "run": None, "progress": {}, "error": ""}
        progress = {}
        try:
            progress = json.loads((self.run / "progress.json").read_text())
        except (OSError, ValueError):
            pass
        code = self.process.poll()
        if code is None:
            state = "running"
        elif code == 0:
            state = "finished"
        elif self.cancelled or code == 130:
            state = "cancelled"
        else:
            state = "failed"
        error = ""
        if state == "failed" and self.log is not None and self.log.is_file():
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("dancenet: error:")]
            error = (errors or lines or ["training stopped unexpectedly"])[-1]
            error = error.removeprefix("dancenet: error: ")
        return {"state": state, "run": str(self.run), "progress": progress, "error": error}

    def stop_and_wait(self, timeout: float = 30.0) -> None:
        if self.busy():
            self.cancel()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --------------------------------------------------------------------------------------------
# page logic (plain functions: each returns what the page shows)


def check_upload(upload: str | None, server_path: str, work: Path) -> tuple[Path, str, Path]:
    """Prepare footage into a fresh dataset under ``work``: (dataset, description, sheet PNG).

    A bad upload is a :class:`DancenetError` whose text the page shows.
    """
    from . import pipeline
    from .ingest import choices_made
    from .sheet import save_contact_sheet

    import numpy as np

    source = upload or (server_path or "").strip()
    if not source:
        raise DancenetError("upload a video, or give the path of a video, BVH or image folder")
    source = Path(source)
    if not source.exists():
        raise DancenetError(f"{source}: no such file or folder on this computer")
    if source.is_file() and source.stat().st_size > MAX_UPLOAD_MB * 2**20:
        raise DancenetError(f"{source.name}: too large ({source.stat().st_size / 2**20:.0f} MB); "
                            f"the limit is {MAX_UPLOAD_MB} MB: trim the video to a few minutes")
    check = work / f"check-{uuid.uuid4().hex[:8]}"
    try:
        dataset = pipeline.prepare_dataset([source], check / "data")
    except DancenetError as error:
        shutil.rmtree(check, ignore_errors=True)
        raise DancenetError(_friendly(str(error), upload, source)) from None
    except Exception as error:  # a file no decoder understands, whatever the library raised
        shutil.rmtree(check, ignore_errors=True)
        raise DancenetError(f"{source.name}: could not be read as a video, BVH or image folder "
                            f"({type(error).__name__})") from None
    indices = np.linspace(0, len(dataset) - 1, num=min(24, len(dataset))).round().astype(int)
    sheet = check / "silhouettes.png"
    save_contact_sheet(sheet, dataset.frames_at(indices) * 255, columns=8,
                       labels=[f"{index / dataset.fps:.1f} s" for index in indices])
    methods = []
    for clip in dataset.clips:
        reason = clip.extra.get("segment_reason")
        methods.append(f"{clip.segmentation}" + (f" ({reason})" if reason else ""))
    warnings, _ = choices_made(dataset)
    description = (f"**{len(dataset) / dataset.fps:.0f} s of dance** ({len(dataset)} frames, "
                   f"{len(dataset.clips)} clip{'s' if len(dataset.clips) > 1 else ''}). "
                   f"Dancer found by: {'; '.join(sorted(set(methods)))}."
                   + "".join(f"\n\n⚠️ {warning}" for warning in warnings))
    return dataset.path, description, sheet


def _friendly(message: str, upload: str | None, source: Path) -> str:
    """An error about a temporary upload path names the file as the user knows it."""
    if upload:
        message = message.replace(str(source), source.name)
    return message


def progress_markdown(status: dict) -> str:
    """The Train tab's status line(s)."""
    state, progress = status["state"], status["progress"]
    if state == "idle":
        return "No training yet."
    name = Path(status["run"]).name
    if state == "failed":
        return f"**{name}: training stopped with an error.** {status['error']}"
    if state == "cancelled":
        return (f"**{name}: cancelled.** The run keeps a checkpoint: "
                f"`dancenet train VIDEO --out {status['run']} --resume` continues it on the "
                "command line.")
    if state == "finished":
        return (f"**{name} is ready.** Choose it in the Model list on the Dance tab.\n\n"
                f"```\n{progress.get('summary', '')}\n```")
    if not progress:
        return f"**{name}: starting...**"
    stages = progress["stages"]
    step = f"{progress['stage_index'] + 1}/{len(stages)}"
    left = int(progress["seconds_left"])
    losses = progress.get("losses") or {}
    shown = [(key, label) for key, label in (("val_iou", "silhouette match (IoU, 1 is perfect)"),
                                             ("train_loss", "VAE loss"),
                                             ("val_nll_nats_per_frame", "motion held-out NLL"))
             if key in losses]
    loss_text = "; ".join(f"{label} {losses[key]:.3g}" for key, label in shown)
    return (f"**{name}: {STAGE_WORDS.get(progress['stage'], progress['stage'])}** (stage {step}), "
            f"{progress['fraction']:.0%} done, about {left // 60} min {left % 60:02d} s left"
            + (f"\n\n{loss_text}" if loss_text else ""))


STAGE_WORDS = {"prepare": "finding the dancer", "vae": "learning her shapes",
               "encode": "summarising every frame", "motion": "learning how she moves",
               "evaluate": "trying a few dances"}


def report_html(run: Path) -> str:
    """The run's report/index.html in a sandboxed iframe, or "" when there is none."""
    index = run / "report" / "index.html"
    if not index.is_file():
        return ""
    return (f'<iframe id="report-frame" sandbox="" style="width:100%;height:900px;border:0" '
            f'srcdoc="{html.escape(index.read_text())}"></iframe>')


def report_summary(run: Path) -> str:
    from .commands.evaluate import summary_table

    try:
        metrics = json.loads((run / "report" / "metrics.json").read_text())
    except (OSError, ValueError):
        return ""
    return "```\n" + summary_table(metrics["summary"], metrics["reference_level"]) + "\n```"


# --------------------------------------------------------------------------------------------
# the page


class Page:
    """What the page's callbacks share: the loaded models, the trainer, where files go."""

    def __init__(self, run: str | None, runs: Path, work: Path, server_paths: bool):
        self.run, self.runs, self.work, self.server_paths = run, runs, work, server_paths
        self.models, self.trainer = Models(), Trainer(runs, work)
        self.first = str(run) if run else BUNDLED
        self.models.get(self.first)  # ready at start; a bad RUN is one line before serving

    def model_choices(self) -> list[str]:
        return [BUNDLED] + [path for path in list_runs(self.runs, self.run) if path != BUNDLED]

    def evaluate_choices(self) -> list[str]:
        return [path for path in list_runs(self.runs, self.run) if (Path(path) / "data").is_dir()
                or (Path(path) / "report" / "metrics.json").is_file()]

    def write_dance(self, name, scale, choice, seconds, seed, temperature, sigma, prime) -> Path:
        """The dance as ``name`` (mp4 or gif) in a fresh folder under ``work``; its path."""
        dancer = self.models.get(choice)
        folder = self.work / f"{Path(name).suffix[1:]}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return dancer.write(folder / name, seconds=float(seconds or 10), seed=int(seed or 0),
                            temperature=float(temperature), sigma_temperature=float(sigma),
                            prime=None if prime in (None, "standing start") else prime,
                            scale=scale)


def build_app(run: str | None = None, runs: str | os.PathLike = "runs",
              work: str | os.PathLike | None = None, server_paths: bool = True):
    """The Gradio Blocks of the app (not launched). ``runs``: where trained runs go.

    server_paths: offer the "path on this computer" box; off when the page is served beyond this
    machine, so that visitors can only train on what they upload.
    """
    import gradio as gr

    work = Path(work or tempfile.mkdtemp(prefix="dancenet-app-"))
    work.mkdir(parents=True, exist_ok=True)
    state = Page(run, Path(runs), work, server_paths)
    with gr.Blocks(title="dancenet", analytics_enabled=False) as page:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Dance", id="dance"):
                dance = _dance_tab(gr, state)
            with gr.Tab("Train", id="train"):
                poll, polled_inputs, polled = _train_tab(gr, state, dance["model"])
            with gr.Tab("Evaluate", id="evaluate"):
                show_report, evaluated, report_outputs = _evaluate_tab(gr, state)
        gr.Timer(1.0).tick(poll, polled_inputs, polled, show_progress="hidden")
        page.load(dance["on_model"], dance["model"], dance["settings"]).then(
            poll, polled_inputs, polled).then(show_report, evaluated, report_outputs)
    page.trainer = state.trainer
    page.work = work
    return page


def _dance_tab(gr, state: Page) -> dict:
    """The Dance tab: model, settings, Generate, the video and its downloads."""

    def on_model(choice):
        dancer = state.models.get(choice)
        temperature, sigma = dancer.temperatures(None, None)
        primes = ["standing start"] + prime_choices(dancer)
        return (gr.update(value=temperature), gr.update(value=sigma),
                gr.update(choices=primes, value="standing start"))

    def refresh_models(choice):
        choices = state.model_choices()
        return gr.update(choices=choices, value=choice if choice in choices else choices[0])

    def generate(*settings):
        try:
            path = state.write_dance("dance.mp4", SCALE, *settings)
        except DancenetError as error:
            return None, None, gr.update(value=f"⚠️ {error}", visible=True)
        return str(path), str(path), gr.update(value="", visible=False)

    def make_gif(*settings):
        try:
            path = state.write_dance("dance.gif", 2, *settings)
        except DancenetError as error:
            return None, gr.update(value=f"⚠️ {error}", visible=True)
        return str(path), gr.update(value="", visible=False)

    gr.Markdown(DANCE_HELP)
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                model = gr.Dropdown(state.model_choices(), value=state.first, label="Model",
                                    elem_id="dance-model", scale=5)
                refresh = gr.Button("↻", elem_id="dance-refresh", scale=1, min_width=40)
            seconds = gr.Slider(2, MAX_GENERATE_SECONDS, value=10, step=1,
                                label="Seconds", elem_id="dance-seconds")
            seed = gr.Number(0, precision=0, label="Seed", elem_id="dance-seed")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05,
                                    label="Temperature (adventurous moves)",
                                    elem_id="dance-temperature")
            sigma = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Spread (free performance)",
                              elem_id="dance-sigma")
            prime = gr.Dropdown(["standing start"], value="standing start",
                                label="Start from", elem_id="dance-prime")
            generate_button = gr.Button("Generate", variant="primary", elem_id="dance-generate")
            dance_message = gr.Markdown(visible=False, elem_id="dance-message")
        with gr.Column(scale=2):
            video = gr.Video(label="Dance", autoplay=True, loop=True,
                             elem_id="dance-video", interactive=False)
            with gr.Row():
                mp4 = gr.File(label="Download mp4", elem_id="dance-mp4", interactive=False)
                gif_button = gr.Button("Make a GIF", elem_id="dance-gif-button")
                gif = gr.File(label="Download GIF", elem_id="dance-gif", interactive=False)
    generation = [model, seconds, seed, temperature, sigma, prime]
    model.change(on_model, model, [temperature, sigma, prime])
    refresh.click(refresh_models, model, model)
    generate_button.click(generate, generation, [video, mp4, dance_message],
                          concurrency_id="generate")
    gif_button.click(make_gif, generation, [gif, dance_message], concurrency_id="generate")
    return {"model": model, "on_model": on_model, "settings": [temperature, sigma, prime]}


def _train_tab(gr, state: Page, model):
    """The Train tab: footage, its check, the budget, start / cancel and live progress.
    Returns the poll callback with its inputs and outputs (the page's timer drives it)."""
    trainer = state.trainer

    def check(upload, server_path):
        try:
            dataset, description, sheet = check_upload(
                upload, server_path if state.server_paths else "", state.work)
        except DancenetError as error:
            return (None, gr.update(value=f"⚠️ **{error}**", visible=True), None,
                    gr.update(interactive=False))
        return (str(dataset), gr.update(value=description, visible=True), str(sheet),
                gr.update(interactive=True))

    def start(dataset, name, minutes):
        try:
            if not dataset:
                raise DancenetError("check the footage first")
            trainer.start(dataset, (name or "").strip(), float(minutes))
        except DancenetError as error:
            return gr.update(value=f"⚠️ **{error}**", visible=True)
        return gr.update(value="", visible=False)

    def poll(known, dataset):
        status = trainer.status()
        preview = status["progress"].get("preview") if status["progress"] else None
        running = status["state"] == "running"
        choices = state.model_choices()  # a run that just finished joins the Dance tab's list
        return (progress_markdown(status), preview if preview and Path(preview).is_file() else None,
                gr.update(interactive=running), gr.update(interactive=not running and bool(dataset)),
                gr.update() if choices == known else gr.update(choices=choices), choices)

    gr.Markdown(TRAIN_HELP.format(server_paths=SERVER_PATHS_HELP if state.server_paths else ""))
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Video of one dancer", type="filepath", elem_id="train-upload")
            server_path = gr.Textbox(label="...or a path on this computer (video, BVH, "
                                           "image folder)", elem_id="train-path",
                                     visible=state.server_paths)
            check_button = gr.Button("Check footage", elem_id="train-check")
            check_message = gr.Markdown(visible=False, elem_id="train-check-message")
        with gr.Column():
            sheet = gr.Image(label="What dancenet sees", type="filepath",
                             elem_id="train-sheet", interactive=False)
    with gr.Row():
        name = gr.Textbox(label="Name of the new model", value="my-dancer", elem_id="train-name")
        minutes = gr.Slider(1, 120, value=20, step=1, label="Minutes of training",
                            elem_id="train-minutes")
    with gr.Row():
        start_button = gr.Button("Start training", variant="primary",
                                 interactive=False, elem_id="train-start")
        cancel_button = gr.Button("Cancel", elem_id="train-cancel", interactive=False)
    start_message = gr.Markdown(visible=False, elem_id="train-start-message")
    status = gr.Markdown("No training yet.", elem_id="train-status")
    preview = gr.Image(label="Real frames (top) and what the model makes of them (bottom)",
                       type="filepath", elem_id="train-preview", interactive=False)
    checked = gr.State(None)
    known_models = gr.State(state.model_choices())
    polled_inputs = [known_models, checked]
    polled = [status, preview, cancel_button, start_button, model, known_models]
    check_button.click(check, [upload, server_path], [checked, check_message, sheet, start_button],
                       concurrency_id="check")
    start_button.click(start, [checked, name, minutes], start_message).then(
        poll, polled_inputs, polled)
    cancel_button.click(lambda: trainer.cancel(), None, None)
    return poll, polled_inputs, polled


def _evaluate_tab(gr, state: Page):
    """The Evaluate tab: a run's report, made on demand. Returns (show_report, its input, outputs)."""

    def show_report(choice):
        if not choice:
            return "Train a model first: the bundled model has no held-out dance here to compare with.", ""
        path = Path(choice)
        if not (path / "report" / "index.html").is_file():
            return "No report yet: press **Evaluate** (about a minute).", ""
        return report_summary(path), report_html(path)

    def evaluate(choice):
        from . import pipeline

        if not choice:
            return show_report(choice)
        try:
            pipeline.evaluate_run(choice)
        except DancenetError as error:
            return f"⚠️ {error}", ""
        return show_report(choice)

    gr.Markdown(EVALUATE_HELP)
    with gr.Row():
        evaluated = gr.Dropdown(state.evaluate_choices(), label="Model", elem_id="evaluate-run",
                                scale=5)
        refresh = gr.Button("↻", scale=1, min_width=40, elem_id="evaluate-refresh")
        evaluate_button = gr.Button("Evaluate", elem_id="evaluate-button", scale=2)
    summary = gr.Markdown(elem_id="evaluate-summary")
    report = gr.HTML(elem_id="evaluate-report")
    evaluated.change(show_report, evaluated, [summary, report])
    refresh.click(lambda choice: gr.update(choices=state.evaluate_choices(), value=choice),
                  evaluated, evaluated)
    evaluate_button.click(evaluate, evaluated, [summary, report], concurrency_id="generate")
    return show_report, evaluated, [summary, report]


def _theme():
    """Gradio's Soft theme with the system's fonts: the page fetches nothing from the internet."""
    import gradio as gr

    return gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["monospace"])


def launch(run: str | None = None, host: str = "127.0.0.1", port: int = 7860,
           runs: str | os.PathLike = "runs", block: bool = True):
    """Build and serve the app; returns the Blocks (``block=False``: returns once serving)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Paths on the server are offered only to a page served on this machine alone.
    page = build_app(run, runs, server_paths=host in ("127.0.0.1", "localhost", "::1"))
    work = page.work
    page.queue(default_concurrency_limit=1)
    try:
        page.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                    allowed_paths=[str(work), str(Path(runs).resolve())], max_file_size=f"{MAX_UPLOAD_MB}mb",
                    show_error=True, quiet=True, theme=_theme())
    finally:
        if block:
            page.trainer.stop_and_wait()
            shutil.rmtree(work, ignore_errors=True)
    return page
