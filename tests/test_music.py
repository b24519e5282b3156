"""--music end to end: reading and analysing songs, bad audio, the dance following the beat, the
song in the mp4 and in sync, beat alignment in the evaluation report. Songs are synthesised."""

import json

import av
import numpy as np
import pytest

pytest.importorskip("librosa", reason="the music extra is not installed: pip install 'dancenet[music]'")

import dancenet  # noqa: E402
from dancenet.cli import main  # noqa: E402
from dancenet.dataset import DatasetWriter  # noqa: E402
from dancenet.errors import DancenetError  # noqa: E402
from dancenet.evaluate import beats  # noqa: E402
from dancenet.evaluate.metrics import artifact_analysis, remove_specks  # noqa: E402
from dancenet.generate import BROKEN_SHARE  # noqa: E402
from dancenet.music import load_music  # noqa: E402
from tests.synthetic_music import RATE, click_track, drum_pattern, write_wav  # noqa: E402


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    clicks, times = click_track(120, 10)
    return {"clicks": write_wav(folder / "clicks120.wav", clicks), "click_times": times,
            "drums90": write_wav(folder / "drums90.wav", drum_pattern(90, 12)),
            "drums130": write_wav(folder / "drums130.wav", drum_pattern(130, 12, seed=1))}


@pytest.fixture(scope="module")
def dancer():
    return dancenet.load(None)


@pytest.mark.parametrize("name, bpm", [("clicks", 120), ("drums90", 90), ("drums130", 130)])
def test_tempo_and_beats_of_synthesised_songs(songs, name, bpm):
    music = load_music(songs[name])
    assert abs(music.tempo - bpm) / bpm < 0.04
    assert np.median(np.diff(music.beats)) == pytest.approx(60 / bpm, rel=0.05)
    if name == "clicks":  # beats sit on the clicks (librosa's onset envelope lags by ~1 step, 23 ms)
        assert beats.beat_alignment(songs["click_times"], music.beats) > 0.8


@pytest.mark.parametrize("codec, suffix, rate", [("flac", ".flac", RATE), ("libmp3lame", ".mp3", 44100),
                                                 ("libopus", ".ogg", 48000)])
def test_other_formats_read_like_wav(songs, tmp_path, codec, suffix, rate):
    path = tmp_path / f"clicks{suffix}"
    with av.open(str(songs["clicks"])) as source, av.open(str(path), "w") as target:
        stream = target.add_stream(codec, rate=rate)
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        for frame in source.decode(audio=0):
            for piece in resampler.resample(frame):
                piece.pts = None
                for packet in stream.encode(piece):
                    target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    music = load_music(path)
    assert music.tempo == pytest.approx(load_music(songs["clicks"]).tempo, rel=0.01)
    assert music.duration == pytest.approx(10.0, abs=0.1)


def test_bad_audio_is_one_line(songs, tmp_path, capsys, monkeypatch):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("these are my dance notes, not a song\n" * 50)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = write_wav(tmp_path / "silent.wav", np.zeros(RATE * 5, np.float32))
    short = write_wav(tmp_path / "short.wav", click_track(120, 1.0)[0])
    cases = {not_audio: "not an audio file", empty: "is empty", silent: "silent",
             short: "at least", tmp_path / "missing.ogg": "no such file"}
    for path, message in cases.items():
        assert main(["generate", "-o", str(tmp_path / "out.mp4"), "--music", str(path), "-q"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("dancenet: error: ") and message in error and error.count("\n") == 1, error
    song = songs["clicks"].read_bytes()
    clicks_mp4 = tmp_path / "clicks.mp4"
    clicks_mp4.write_bytes(song)  # a song may be any file with an audio stream; never the output
    assert main(["generate", "-o", str(clicks_mp4), "--music", str(clicks_mp4), "-q"]) == 2
    assert "is the song itself" in capsys.readouterr().err and clicks_mp4.read_bytes() == song
    monkeypatch.setattr("dancenet.music.MAX_SECONDS", 5.0)
    with pytest.raises(DancenetError, match="at most 0 minutes: give --seconds"):
        load_music(songs["drums90"])
    assert load_music(songs["drums90"], seconds=4.0).duration == pytest.approx(4.0, abs=0.01)
    assert not list(tmp_path.glob("out*"))  # nothing half-written


def test_a_dance_to_music_drops_specks_as_a_plain_dance_does(dancer, songs, monkeypatch):
    music = load_music(songs["drums130"])
    video = dancer.generate(seconds=8.0, seed=0, music=music)
    monkeypatch.setattr(type(dancer), "shown", staticmethod(lambda frames: frames))
    decoded = dancer.generate(seconds=8.0, seed=0, music=music)

    def specked(frames):  # frames with pieces off the body that hold at most 2% of it
        per_frame = artifact_analysis(frames).per_frame
        return (per_frame > 0) & (per_frame <= BROKEN_SHARE)

    assert specked(decoded).any() and not specked(video).any()
    assert np.array_equal(video, decoded * remove_specks(decoded, BROKEN_SHARE))


def test_the_dance_follows_the_music(dancer, songs):
    music = load_music(songs["drums130"])
    with_music = dancer.generate(seed=0, music=music)
    assert len(with_music) == dancer.frame_count(music.duration)  # as long as the song
    short = dancer.generate(seconds=4.0, seed=0, music=music)
    assert len(short) == dancer.frame_count(4.0)
    assert np.array_equal(short, dancer.generate(seconds=4.0, seed=0, music=music))  # the seed reproduces it
    # one seed's plain dance can land on the beats by chance: compare over eight seeds. A dance to
    # the music keeps its tempo (error near 0) or settles on another (0.15-0.32), so one seed tipping
    # over moved the mean of four by 0.07: the test compares the median of eight.
    scores = {"music": [], "plain": []}
    for seed in range(8):
        for name, frames in (("music", with_music if seed == 0 else dancer.generate(seed=seed, music=music)),
                             ("plain", dancer.generate(seconds=music.duration, seed=seed))):
            scores[name].append(beats.beat_scores(music.beats, music.tempo, beats.dance_beats(frames, dancer.fps),
                                                  music.duration))
    alignment = {name: np.mean([score["beat_alignment"] for score in found]) for name, found in scores.items()}
    tempo_error = {name: np.median([score["tempo_error"] for score in found]) for name, found in scores.items()}
    assert alignment["music"] > 1.3 * alignment["plain"]
    assert tempo_error["music"] < 0.5 * tempo_error["plain"]


def recommending(tmp_path, component_correlation):
    """A copy of the bundled model whose motion.json recommends ``component_correlation``."""
    import shutil

    from dancenet.generate import COMPONENT_CORRELATION, bundled_directory

    copy = tmp_path / "recommends"
    shutil.copytree(bundled_directory(), copy)
    info = json.loads((copy / "motion.json").read_text())
    assert info["metadata"]["sampling"].get("component_correlation", COMPONENT_CORRELATION) == 0.0
    info["metadata"]["sampling"]["component_correlation"] = component_correlation
    (copy / "motion.json").write_text(json.dumps(info))
    return copy


def test_a_dance_to_music_draws_components_as_before_unless_told(songs, tmp_path, capsys):
    """A model may recommend a component correlation (motion training's final check chooses one):
    dances without music take it; dances to music keep generate.COMPONENT_CORRELATION (a
    correlated component moved dances off the song's tempo) unless the caller sets one."""
    from dancenet.generate import COMPONENT_CORRELATION

    recommends = recommending(tmp_path, 0.6)
    plain, calm = dancenet.load(None), dancenet.load(recommends)
    music = load_music(songs["clicks"])
    assert calm.component_correlation == 0.6 and calm.component_correlation_for(music=True) == COMPONENT_CORRELATION
    assert not np.array_equal(calm.generate(seconds=2, seed=0), plain.generate(seconds=2, seed=0))
    to_music = plain.generate(seconds=2, seed=0, music=music)
    assert np.array_equal(calm.generate(seconds=2, seed=0, music=music), to_music)
    calm.component_correlation = 0.6  # set by the caller (--component-correlation): music draws at it
    assert calm.component_correlation_for(music=True) == 0.6
    assert not np.array_equal(calm.generate(seconds=2, seed=0, music=music), to_music)
    # the command line says so, unless told the value or to be quiet
    for extra, said in (([], True), (["--component-correlation", "0.6"], False), (["-q"], False)):
        assert main(["generate", str(recommends), "-o", str(tmp_path / "dance.gif"), "--music",
                     str(songs["clicks"]), "--seconds", "2", "--scale", "1", *extra]) == 0
        assert ("recommends --component-correlation 0.6" in capsys.readouterr().err) is said


def decoded_audio(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        pieces = [piece.to_ndarray().reshape(-1) for frame in container.decode(stream)
                  for piece in resampler.resample(frame)]
    return np.concatenate(pieces)


def test_the_song_is_in_the_mp4_and_in_sync(dancer, songs, tmp_path, capsys):
    out = tmp_path / "dance.mp4"
    assert main(["generate", "-o", str(out), "--music", str(songs["clicks"]), "--scale", "1", "-q"]) == 0
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
    assert video_seconds == pytest.approx(10.0, abs=1 / dancer.fps)
    assert abs(audio_seconds - video_seconds) < 1 / dancer.fps
    samples = decoded_audio(out)
    envelope = np.abs(samples)
    found = []
    for time in songs["click_times"]:  # each click's onset in the decoded mp4 audio
        window = envelope[int((time - 0.01) * RATE):int((time + 0.03) * RATE)]
        found.append(time - 0.01 + np.argmax(window > 0.1) / RATE)
    assert np.abs(np.array(found) - songs["click_times"]).max() < 1 / dancer.fps
    # GIF: the dance still follows the song, and the user is told there is no sound
    assert main(["generate", "-o", str(tmp_path / "dance.gif"), "--music", str(songs["clicks"]),
                 "--seconds", "2", "--scale", "1"]) == 0
    assert "carry no audio" in capsys.readouterr().err


def test_evaluate_and_evaluate_video_report_beat_alignment(dancer, songs, tmp_path, capsys):
    reference = tmp_path / "reference"
    with DatasetWriter(reference, dancer.height, dancer.width, dancer.fps) as writer:
        for seed in (5, 6):
            writer.add_clip(f"take{seed}", "synthetic", "synthetic", dancer.generate(seconds=6, seed=seed) > 0,
                            dancer.fps)
    video = tmp_path / "dance.mp4"
    dancer.write(video, seed=1, scale=1, music=songs["drums90"])
    out = tmp_path / "report"
    # the song read back from the mp4's own AAC track: any file with an audio stream is a song
    assert main(["evaluate-video", str(video), "--reference", str(reference), "--music", str(video),
                 "-o", str(out), "-q"]) == 0
    assert "beat alignment: dance" in capsys.readouterr().out
    music = json.loads((out / "metrics.json").read_text())["music"]
    assert music["with_music"]["beat_alignment"] > music["without_music"]["beat_alignment"]
    assert music["real_at_random_offsets"]["beat_alignment"] is not None
    page = (out / "index.html").read_text()
    assert "<h2>Music</h2>" in page and "music and dance beat tracks" in page
    # evaluate: the run's dances to the song, beside the same seeds without it, here of a model
    # that recommends a component correlation: both drawn as dances to music draw
    out = tmp_path / "report-run"
    assert main(["evaluate", str(recommending(tmp_path, 0.6)), "--reference", str(reference), "--seconds", "5",
                 "--samples", "1", "--music", str(songs["drums90"]), "-o", str(out), "-q"]) == 0
    assert json.loads((out / "metrics.json").read_text())["source"]["component_correlation"] == 0.0
    music = json.loads((out / "metrics.json").read_text())["music"]
    assert music["music"]["duration"] == pytest.approx(5.0, abs=0.01)  # --seconds cuts the song
    assert "how" not in music["without_music"]  # the chance level is the seeds without music
    assert music["samples"][0]["name"] == "seed 0" and music["with_music"]["over_chance"] > 1
