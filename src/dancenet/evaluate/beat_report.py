"""The music section of the evaluation report: beat figures and both beat tracks in one plot."""

from __future__ import annotations

import html

import numpy as np

PLOT_SECONDS = 20.0


def _plot(music: dict, energy: dict[str, np.ndarray], fps: float) -> str:
    from matplotlib.figure import Figure

    from .report import _png

    names = [sample["name"] for sample in music["samples"]][:3]
    figure = Figure(figsize=(9, 1.7 * len(names) + 0.6))
    music_beats = np.asarray(music["beats"]["music"])
    for row, name in enumerate(names):
        axes = figure.add_subplot(len(names), 1, row + 1)
        values = energy[name][:int(PLOT_SECONDS * fps)]
        seconds = (np.arange(len(values)) + 0.5) / fps
        axes.plot(seconds, values, linewidth=0.8, color="tab:blue")
        for beat in music_beats[music_beats <= seconds[-1]]:
            axes.axvline(beat, color="tab:red", linewidth=0.8, alpha=0.6)
        motion = np.asarray(music["beats"][name])
        motion = motion[motion <= seconds[-1]]
        axes.plot(motion, np.interp(motion, seconds, values), "v", color="black", markersize=4)
        score = next(s for s in music["samples"] if s["name"] == name)["beat_alignment"]
        axes.set_ylabel(f"{name}\nBAS {score:.2f}", fontsize=8)
        axes.tick_params(labelsize=7)
    axes.set_xlabel("seconds: motion energy (blue), kinematic beats (black), music beats (red lines)")
    return _png(figure)


def music_section(evaluation) -> str:
    """HTML for ``evaluation.metrics["music"]`` (empty when the evaluation had no music)."""
    music = evaluation.metrics.get("music")
    if not music:
        return ""
    rows = []
    for key, label in (("with_music", "generated with --music"), ("without_music", "chance: without music"),
                       ("real_at_random_offsets", "real dance, song at random offsets")):
        level = music[key]
        cells = "".join(f"<td class=n>{'&ndash;' if level.get(k) is None else f'{level[k]:.3f}'}</td>"
                        for k in ("beat_alignment", "motion_beat_alignment", "tempo_error", "tempo_error_strict"))
        note = f" ({html.escape(level['how'])})" if "how" in level else ""
        rows.append(f"<tr><td>{label}{note}</td>{cells}</tr>")
    over = music["with_music"].get("over_chance")
    return f"""<h2>Music</h2>
<p>{html.escape(music['music']['path'])}: {music['music']['tempo']:.1f} bpm, {music['music']['beats']} beats,
{music['music']['duration']:.1f} s. Beat alignment over chance: {'&ndash;' if over is None else f'{over:.2f}x'}.</p>
<table><tr><th></th><th>beat alignment (Bailando)</th><th>motion-beat alignment (AIST++)</th>
<th>tempo error</th><th>tempo error, no octave</th></tr>{''.join(rows)}</table>
<p class=note>Scores: mean of exp(-d&sup2;/2&sigma;&sup2;), &sigma; = {music['sigma_seconds']:.3f} s, d = distance from
each music beat to the nearest kinematic beat (Bailando) or from each kinematic beat to the nearest music beat
(AIST++). Tempo error allows half or double tempo unless marked. Definitions: docs/music.md.</p>
<img src="{_plot(music, evaluation.energy, evaluation.fps)}" alt="music and dance beat tracks">
"""
