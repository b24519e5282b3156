"""Beat metrics (pure numpy) and the time-warp plan, without librosa or a model."""

import numpy as np

from dancenet import choreography
from dancenet.evaluate import beats


def brute_alignment(targets, candidates, sigma):
    return np.mean([np.exp(-min((c - t) ** 2 for c in candidates) / (2 * sigma ** 2)) for t in targets])


def test_alignment_scores_match_their_definitions():
    generator = np.random.default_rng(0)
    music = np.sort(generator.uniform(0, 20, 30))
    motion = np.sort(generator.uniform(0, 20, 45))
    sigma = beats.SIGMA_SECONDS
    assert np.isclose(beats.beat_alignment(music, motion), brute_alignment(music, motion, sigma))
    assert np.isclose(beats.motion_beat_alignment(music, motion), brute_alignment(motion, music, sigma))
    music = np.arange(0.5, 20, 0.5)
    assert beats.beat_alignment(music, music) == 1.0
    assert np.isclose(beats.beat_alignment(music, music + sigma), np.exp(-0.5))
    # Bailando's direction ignores extra motion beats; the AIST++ direction is lowered by them.
    extra = np.sort(np.concatenate([music, music[:-1] + np.diff(music) / 2]))
    assert beats.beat_alignment(music, extra) == 1.0
    assert beats.motion_beat_alignment(music, extra) < 0.6
    # music beats after the dance's end do not count
    assert beats.beat_alignment(np.array([1.0, 30.0]), np.array([1.0]), duration=10.0) == 1.0
    assert beats.beat_alignment(np.array([1.0, 30.0]), np.array([1.0])) == 0.5


def test_kinematic_beats_are_the_minima_of_motion_energy():
    fps = 60.0
    time = np.arange(600) / fps
    energy = 1.2 + np.cos(2 * np.pi * time * 2.0)  # minima at 0.25 + k * 0.5 s
    found = beats.kinematic_beats(energy, fps)
    expected = 0.25 + 0.5 * np.arange(len(found))
    assert len(found) == 20
    assert np.abs(found - expected).max() <= 1 / fps


def test_tempo_of_a_beat_train_with_extra_and_missing_beats():
    generator = np.random.default_rng(1)
    grid = np.arange(0, 60, 60 / 97.0)
    kept = grid[generator.random(len(grid)) > 0.2]
    kept = kept + generator.normal(0, 0.01, len(kept))
    noisy = np.sort(np.concatenate([kept, generator.uniform(0, 60, 20)]))
    tempo = beats.beat_tempo(noisy)
    assert beats.tempo_error(tempo, 97.0) < 0.02
    assert beats.tempo_error(194.0, 97.0) == 0.0 and beats.tempo_error(194.0, 97.0, octave=False) == 1.0
    assert beats.beat_tempo(np.array([1.0, 2.0])) is None


def test_warp_plan_puts_native_beats_on_music_beats_within_the_rate_limits():
    generator = np.random.default_rng(2)
    native = np.cumsum(generator.uniform(0.3, 0.8, 200))
    music = np.arange(0.4, 30, 60 / 140.0)
    anchors = choreography.plan_anchors(native, music, 30.0)
    assert anchors[0].tolist() == [0.0, 0.0]
    assert np.allclose(anchors[1:, 0], music)
    assert (np.diff(anchors, axis=0) > 0).all()
    rates = np.diff(anchors[:, 1]) / np.diff(anchors[:, 0])
    assert rates.min() >= choreography.MIN_RATE and rates.max() <= choreography.MAX_RATE
    assert np.isin(anchors[1:, 1], native).mean() > 0.9  # nearly every music beat got a dance beat
    fps = 30.0
    positions = choreography.warp_positions(anchors, 900, fps)
    assert (np.diff(positions) > 0).all()  # time never runs backwards
    for output_time, native_time in anchors:
        frame = int(round(output_time * fps))
        if frame < 900 and abs(frame - output_time * fps) < 1e-9:
            assert np.isclose(positions[frame], native_time * fps)
    rate = np.diff(positions)
    assert rate.max() <= choreography.MAX_RATE * 1.5  # PCHIP may overshoot a little, never wildly


def test_music_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    import sys

    from dancenet.cli import main
    from tests.synthetic_music import click_track, write_wav

    song = write_wav(tmp_path / "song.wav", click_track(120, 4)[0])
    monkeypatch.setitem(sys.modules, "librosa", None)  # as if not installed
    assert main(["generate", "-o", str(tmp_path / "dance.mp4"), "--music", str(song)]) == 2
    assert "pip install 'dancenet[music]'" in capsys.readouterr().err
    assert not (tmp_path / "dance.mp4").exists()
