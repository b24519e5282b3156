"""Write an evaluation as report/metrics.json and a self-contained report/index.html.

Plots are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global state) and embedded as
base64, videos as base64 GIFs, so index.html opens from disk alone, mailed or copied anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_directory
from ..sheet import contact_sheet
from .suite import Evaluation, worst_is_clean

GIF_SECONDS = 10.0
SHEET_TILES = 24
SHEET_COLUMNS = 6

# (key, label, what it means, which direction is good)
SUMMARY_ROWS = (
    ("freeze_ratio", "freeze ratio", "share of frames in still runs >= 0.5 s", "lower"),
    ("loop_ratio", "loop ratio", "share of 1 s windows repeating an earlier one", "lower"),
    ("artifact_ratio", "artifact ratio", "share of foreground outside the main body", "lower"),
    ("stray_frame_ratio", "frames with stray pieces", "share of frames with any foreground outside the main body",
     "lower"),
    ("empty_frame_ratio", "empty frames", "share of frames with < 0.1% foreground", "lower"),
    ("frechet_distance", "Frechet distance", "shape+motion windows vs reference (real-vs-real is the floor)", "lower"),
    ("diversity", "diversity", "mean 1 - IoU of time-aligned frames between seeds / takes", "near real"),
    ("memorisation_mean_best_iou", "memorisation", "mean best IoU of a frame with any training frame", "near real"),
    ("copied_frame_ratio", "copied frames", "share of frames with best training IoU >= 0.95", "near real"),
    ("unlike_frame_ratio", "unlike any pose", "share of frames whose shape, centred, matches no training frame's "
     "at IoU 0.6 (melted or doubled bodies)", "near real"),
    ("reconstruction_iou", "VAE reconstruction IoU", "held-out real frames through the VAE", "higher"),
    ("motion_nll", "motion NLL / frame", "held-out latent negative log-likelihood", "lower"),
)

# The worst-window metrics (suite.worst_windows), in table order: key -> short name for the plots.
WORST_WINDOW_NAMES = {"freeze_ratio": "freeze", "loop_ratio": "loop", "artifact_ratio": "artifacts",
                      "empty_frame_ratio": "empty", "copied_frame_ratio": "copied",
                      "unlike_frame_ratio": "unlike",
                      "motion_energy_over_real": "energy"}


def _format(value) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, dict):  # motion energy summary
        return f"{value['mean']:.4f} (p5 {value['p5']:.4f}, p95 {value['p95']:.4f})"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return html.escape(str(value))


def _png(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gif_data_uri(frames: np.ndarray, fps: float, seconds: float = GIF_SECONDS) -> str:
    """The first ``seconds`` of (time, H, W) silhouettes as a looping base64 GIF data URI."""
    frames = np.asarray(frames)[:max(1, int(round(seconds * fps)))]
    images = [Image.fromarray((frame != 0).astype(np.uint8) * 255) for frame in frames]
    buffer = io.BytesIO()
    # GIF delays are in 1/100 s, so 30 fps plays at 1/0.03 = 33 fps: close enough to judge motion.
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, int(round(1000 / fps))), optimize=False)
    return "data:image/gif;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sheet(frames: np.ndarray, fps: float) -> str:
    indices = np.linspace(0, len(frames) - 1, min(SHEET_TILES, len(frames))).round().astype(np.int64)
    labels = [f"{index / fps:.1f}s" for index in indices]
    return _image(contact_sheet(frames[indices], SHEET_COLUMNS, labels=labels))


def _plots(evaluation: Evaluation) -> dict[str, str]:
    """Every plot as a PNG data URI, keyed by name."""
    return {name: plot(evaluation) for name, plot in PLOTS.items()}


def _plot_energy_histogram(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    names = list(evaluation.videos)
    settings = evaluation.metrics["settings"]
    figure = Figure(figsize=(8, 3.2))
    axes = figure.add_subplot()
    upper = max(np.percentile(np.concatenate([evaluation.reference_energy] + [evaluation.energy[n] for n in names]),
                              99.5), 1e-4)
    bins = np.linspace(0, upper, 60)
    axes.hist(evaluation.reference_energy, bins=bins, density=True, histtype="stepfilled", alpha=0.35,
              color="black", label="real reference")
    for name in names:
        axes.hist(evaluation.energy[name], bins=bins, density=True, histtype="step", linewidth=1.4, label=name)
    axes.axvline(settings["freeze_threshold"], color="red", linestyle=":", label="freeze threshold")
    axes.set_xlabel("motion energy (share of pixels changed from the previous frame)")
    axes.set_ylabel("density")
    axes.legend(fontsize=8)
    return _png(figure)


def _plot_energy_timeline(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    fps = evaluation.fps
    names = list(evaluation.videos)
    figure = Figure(figsize=(8, 1.6 * len(names) + 0.6))
    for row, name in enumerate(names):
        axes = figure.add_subplot(len(names), 1, row + 1)
        energy = evaluation.energy[name]
        seconds = np.arange(1, len(energy) + 1) / fps
        axes.plot(seconds, energy, linewidth=0.7, color="tab:blue")
        frozen = evaluation.freeze[name]
        axes.fill_between(seconds, 0, energy.max(initial=1e-4), where=frozen, color="red", alpha=0.25, step="mid",
                          label="frozen")
        axes.set_ylabel(name, fontsize=8)
        axes.tick_params(labelsize=7)
        if row == 0:
            axes.legend(fontsize=7, loc="upper left")
        artifact_axes = axes.twinx()
        artifact_axes.plot(seconds, evaluation.artifacts[name][1:], linewidth=0.7, color="tab:orange")
        artifact_axes.set_ylim(0, max(0.05, float(evaluation.artifacts[name].max(initial=0))))
        artifact_axes.tick_params(labelsize=7, colors="tab:orange")
        _mark_worst_windows(axes, evaluation.metrics["summary"].get("worst_window", {}), name)
    axes.set_xlabel("seconds: motion energy per frame (blue), frozen spans shaded, artifact share (orange, right), "
                    "worst windows purple", fontsize=8)
    return _png(figure)


def _mark_worst_windows(axes, worst: dict, name: str) -> None:
    """Outline the worst windows of every video that lie in video ``name``, named by their metrics."""
    spans: dict[tuple[float, float], list[str]] = {}
    for key, entry in worst.items():
        if entry.get("video") == name and not worst_is_clean(key, entry):
            spans.setdefault((entry["start_seconds"], entry["seconds"]), []).append(WORST_WINDOW_NAMES.get(key, key))
    for row, ((start, seconds), keys) in enumerate(sorted(spans.items())):
        axes.axvspan(start, start + seconds, facecolor="purple", alpha=0.07, edgecolor="purple", linestyle="--",
                     linewidth=0.9)
        axes.text(start, 0.97 - 0.16 * (row % 4), " worst " + ", ".join(keys), transform=axes.get_xaxis_transform(),
                  fontsize=6, color="purple", va="top")


def _worst_window_table(metrics: dict) -> str:
    """The worst-window rows as an HTML section ("" for a report without them)."""
    worst, real = metrics["summary"].get("worst_window"), metrics["reference_level"].get("worst_window", {})
    if not worst:
        return ""
    labels = {key: label for key, label, _, _ in SUMMARY_ROWS}
    labels["motion_energy_over_real"] = "motion energy / real mean"

    def cells(entry: dict | None, key: str) -> str:
        if entry is None:
            return "<td class=n>&ndash;</td><td></td>"
        if worst_is_clean(key, entry):  # nothing bad to point at
            return "<td class=n>0</td><td></td>"
        start, where = entry["start_seconds"], entry.get("video", entry.get("clip", ""))
        return (f"<td class=n>{_format(entry['value'])}</td>"
                f"<td>{html.escape(str(where))}, {start:g}&ndash;{start + entry['seconds']:g} s</td>")

    rows = "".join(f"<tr><td>{labels.get(key, key)}</td>{cells(worst[key], key)}{cells(real.get(key), key)}</tr>"
                   for key in WORST_WINDOW_NAMES if key in worst)
    seconds = metrics["settings"].get("worst_window_seconds", 10)
    return (f"<h2>Worst {seconds:g} s window</h2><p class=note>Each metric's worst {seconds:g} s stretch of any "
            f"sample (windows every second), beside real dance's worst; motion energy: the window farthest from "
            f"the real mean, as a ratio. Shaded purple on the motion energy timeline.</p>"
            f"<table><tr><th>metric</th><th>generated worst</th><th>where</th><th>real worst</th><th>where</th></tr>"
            f"{rows}</table>")


def _plot_recurrence(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    fps = evaluation.fps
    names = list(evaluation.videos)
    figure = Figure(figsize=(3.4 * len(names), 3.6))
    for column, name in enumerate(names):
        loop = evaluation.loops[name]
        axes = figure.add_subplot(1, len(names), column + 1)
        extent = len(evaluation.videos[name]) / fps
        axes.imshow(loop.recurrence, origin="lower", cmap="magma", vmin=0, vmax=1, extent=(0, extent, 0, extent))
        axes.set_title(f"{name}: loop ratio {loop.ratio:.1%}", fontsize=9)
        axes.set_xlabel("seconds")
        axes.tick_params(labelsize=7)
    return _png(figure)


def _plot_loop_similarity(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    fps = evaluation.fps
    names = list(evaluation.videos)
    settings = evaluation.metrics["settings"]
    figure = Figure(figsize=(8, 2.6))
    axes = figure.add_subplot()
    for name in names:
        loop = evaluation.loops[name]
        axes.plot(np.arange(len(loop.best_similarity)) / fps, loop.best_similarity, linewidth=0.8, label=name)
    axes.axhline(settings["loop_threshold"], color="red", linestyle=":", label="loop threshold")
    axes.set_ylim(0, 1)
    axes.set_xlabel("window start (seconds)")
    axes.set_ylabel("best match with an\nearlier window", fontsize=8)
    axes.legend(fontsize=7)
    return _png(figure)


def _plot_memorisation(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    names = list(evaluation.videos)
    settings = evaluation.metrics["settings"]
    figure = Figure(figsize=(8, 2.8))
    axes = figure.add_subplot()
    bins = np.linspace(0, 1, 51)
    if evaluation.reference_memorisation is not None:
        axes.hist(evaluation.reference_memorisation, bins=bins, density=True, histtype="stepfilled", alpha=0.35,
                  color="black", label="held-out real frames")
    for name in names:
        axes.hist(evaluation.memorisation[name], bins=bins, density=True, histtype="step", linewidth=1.4,
                  label=name)
    axes.axvline(settings["copied_iou"], color="red", linestyle=":", label="copied")
    axes.set_xlabel("best soft IoU with any training frame")
    axes.set_ylabel("density")
    axes.legend(fontsize=7)
    return _png(figure)


def _plot_frechet(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    names = list(evaluation.videos)
    figure = Figure(figsize=(6, 2.4))
    axes = figure.add_subplot()
    labels = [sample["name"] for sample in evaluation.metrics["samples"]] + ["all samples"]
    values = [sample["frechet_distance"] for sample in evaluation.metrics["samples"]]
    values.append(evaluation.metrics["summary"]["frechet_distance"])
    floor = evaluation.metrics["summary"]["frechet_real_vs_real"]
    if floor is not None:
        labels.append("real vs real")
        values.append(floor)
    axes.barh(labels, values, color=["tab:blue"] * (len(names) + 1) + ["gray"] * (floor is not None))
    axes.set_xlabel("Frechet distance (whitened shape+motion windows)")
    axes.tick_params(labelsize=8)
    return _png(figure)


# The report's figures, in page order: name -> (evaluation -> PNG data URI).
PLOTS = {
    "energy_histogram": _plot_energy_histogram,
    "energy_timeline": _plot_energy_timeline,
    "recurrence": _plot_recurrence,
    "loop_similarity": _plot_loop_similarity,
    "memorisation": _plot_memorisation,
    "frechet": _plot_frechet,
}


def render_html(evaluation: Evaluation, title: str) -> str:
    """The whole report page as one string; every image is a data URI."""
    metrics = evaluation.metrics
    summary, reference_level = metrics["summary"], metrics["reference_level"]
    plots = _plots(evaluation)
    from .beat_report import music_section  # the music hook: empty without --music
    rows = []
    for key, label, meaning, better in SUMMARY_ROWS:
        if key not in summary and key not in reference_level:
            continue
        rows.append(f"<tr><td>{label}</td><td class=n>{_format(summary.get(key))}</td>"
                    f"<td class=n>{_format(reference_level.get(key))}</td><td>{meaning}</td><td>{better}</td></tr>")
    rows.append(f"<tr><td>motion energy</td><td class=n>{_format(summary['motion_energy'])}</td>"
                f"<td class=n>{_format(reference_level['motion_energy'])}</td>"
                f"<td>share of pixels changing per frame; Wasserstein to real "
                f"{summary['motion_energy_wasserstein']:.2e}</td><td>near real</td></tr>")
    sample_rows = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td class=n>{s['seconds']:.1f}</td>"
        f"<td class=n>{s['freeze_ratio']:.3f}</td><td class=n>{s['loop_ratio']:.3f}</td>"
        f"<td class=n>{s['artifact_ratio']:.4f}</td><td class=n>{s['empty_frame_ratio']:.3f}</td>"
        f"<td class=n>{s['frechet_distance']:.3g}</td><td class=n>{s['motion_energy']['mean']:.4f}</td>"
        f"<td class=n>{s['memorisation_mean_best_iou']:.3f}</td></tr>" for s in metrics["samples"])
    videos = "".join(
        f"<figure><img src=\"{gif_data_uri(frames, evaluation.fps)}\" alt=\"{html.escape(name)}\">"
        f"<figcaption>{html.escape(name)} (first {min(GIF_SECONDS, len(frames) / evaluation.fps):.0f} s)"
        f"</figcaption></figure>" for name, frames in evaluation.videos.items())
    sheets = "".join(
        f"<h3>{html.escape(name)}</h3><img src=\"{_sheet(frames, evaluation.fps)}\" alt=\"contact sheet\">"
        for name, frames in evaluation.videos.items())
    real = np.concatenate(evaluation.reference_frames)
    reference = metrics["reference"]
    source = metrics.get("source", {})
    source_lines = "".join(f"<li>{html.escape(str(key))}: {html.escape(str(value))}</li>"
                           for key, value in source.items())
    timings = ", ".join(f"{key} {value:.2f} s" for key, value in metrics["timings_seconds"].items())
    image = lambda key, alt: f"<img src=\"{plots[key]}\" alt=\"{alt}\">"  # noqa: E731
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }} th {{ background: #f0f0f0; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 100%; }}
.note {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<ul>{source_lines}
<li>reference: {html.escape(reference['path'])} ({html.escape(reference['role'])}: {len(reference['clips'])} clips,
{reference['frames']} frames at {reference['fps']:g} fps, {reference['width']}x{reference['height']})</li></ul>
<h2>Summary</h2>
<table><tr><th>metric</th><th>generated</th><th>real reference</th><th>meaning</th><th>better</th></tr>
{''.join(rows)}</table>
<p class=note>Definitions: docs/metrics.md. Real reference = the same metric on real dance
(real-vs-real Frechet compares the first and second halves of every reference clip).</p>
{_worst_window_table(metrics)}
<h2>Per sample</h2>
<table><tr><th>sample</th><th>seconds</th><th>freeze</th><th>loop</th><th>artifact</th><th>empty</th>
<th>Frechet</th><th>motion energy</th><th>memorisation</th></tr>{sample_rows}</table>
{music_section(evaluation)}
<h2>Videos</h2>{videos}
<h2>Motion energy</h2>{image('energy_histogram', 'motion energy histograms')}
{image('energy_timeline', 'motion energy over time')}
<h2>Loops</h2><p class=note>Recurrence: soft IoU between frames (bright = alike); a loop shows as
bright diagonal lines off the main diagonal.</p>{image('recurrence', 'recurrence plots')}
{image('loop_similarity', 'best window similarity')}
<h2>Frechet distance</h2>{image('frechet', 'Frechet distances')}
<h2>Memorisation</h2>{image('memorisation', 'memorisation histogram')}
<h2>Contact sheets</h2>{sheets}
<h3>real reference</h3><img src="{_sheet(real, evaluation.fps)}" alt="real contact sheet">
<p class=note>Timings: {html.escape(timings)}</p>
</body></html>
"""


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


REPORT_FILES = frozenset({"metrics.json", "index.html"})


def is_report_folder(path: Path) -> bool:
    """Whether ``path/metrics.json`` carries the evaluation format marker."""
    try:
        metrics = json.loads((Path(path) / "metrics.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and metrics.get("format") == "dancenet-evaluation"


def check_report_directory(out: str | os.PathLike) -> Path:
    """Fail early unless ``out`` is absent, empty, or an earlier report and nothing else (which is
    then replaced): a folder holding any other file or a subfolder is never replaced."""
    from ..paths import check_replaceable

    return check_replaceable(out, is_report_folder, REPORT_FILES.__contains__, "a report", flag="-o")


def write_report(evaluation: Evaluation, out: str | os.PathLike, title: str = "dancenet evaluation") -> Path:
    """Write ``out/metrics.json`` and ``out/index.html`` atomically; returns ``out``.

    An existing report at ``out`` is replaced; any other non-empty directory is left alone.
    """
    out = check_report_directory(out)
    page = render_html(evaluation, title)
    with atomic_directory(out, overwrite=True) as directory:
        with open(directory / "metrics.json", "w") as handle:
            json.dump(_json_ready(evaluation.metrics), handle, indent=2)
            handle.write("\n")
        (directory / "index.html").write_text(page, encoding="utf-8")
    return out
