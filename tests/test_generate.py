"""Generation end to end: a tiny dataset -> train vae -> encode -> train motion -> generate."""

import json
import os
import shutil

import av
import numpy as np
import pytest
import torch

import dancenet
from dancenet.cli import main
from dancenet.dataset import DatasetWriter
from dancenet.errors import DancenetError
from dancenet.generate import interpolate
from dancenet.video import VideoWriter, upscale

HEIGHT, WIDTH, FPS = 32, 48, 30.0


def figure(count, phase):
    """(count, HEIGHT, WIDTH) bool: a body with an arm swinging, drifting sideways."""
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    masks = np.zeros((count, HEIGHT, WIDTH), dtype=bool)
    for index in range(count):
        angle = phase + 0.3 * index
        centre = WIDTH * (0.5 + 0.2 * np.sin(angle * 0.5))
        body = (np.abs(columns - centre) <= 4) & (rows >= 8) & (rows <= 26)
        head = (rows - 5) ** 2 + (columns - centre) ** 2 <= 9
        tip = (12 + 8 * np.sin(angle), centre + 12 * np.cos(angle))
        arm = np.zeros_like(body)
        for t in np.linspace(0, 1, 10):
            arm |= (rows - (10 + t * (tip[0] - 10))) ** 2 + (columns - (centre + t * (tip[1] - centre))) ** 2 <= 4
        masks[index] = body | head | arm
    return masks


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    with DatasetWriter(root / "data", HEIGHT, WIDTH, FPS) as writer:
        for clip in range(3):
            writer.add_clip(f"take{clip}", "synthetic", "threshold", figure(60, clip * 1.3), FPS)
    run = root / "run"
    assert main(["train", "vae", str(root / "data"), "--out", str(run), "--epochs", "6",
                 "--latent-size", "8", "--batch-size", "16", "--learning-rate", "0.005", "--quiet"]) == 0
    assert main(["encode", str(run), str(root / "data"), "--quiet"]) == 0
    recipe = root / "tiny.yaml"
    recipe.write_text("preset: default\nmodel: {hidden_size: 32, num_layers: 1, num_mixtures: 3}\n"
                      "training: {epochs: 3, batch_size: 4, sequence_length: 16, val_clips: 1}\n")
    assert main(["train", "motion", str(run), "--config", str(recipe), "--quiet"]) == 0
    return run


def generate(run, output, *options):
    return main(["generate", str(run), "-o", str(output), "--quiet", *options])


def read_video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
        return np.stack(frames), float(stream.average_rate)


def test_same_seed_same_bytes_other_seed_differs(run, tmp_path):
    assert generate(run, tmp_path / "a.mp4", "--seconds", "2", "--scale", "2") == 0
    assert generate(run, tmp_path / "b.mp4", "--seconds", "2", "--scale", "2") == 0
    assert generate(run, tmp_path / "c.mp4", "--seconds", "2", "--scale", "2", "--seed", "1") == 0
    first = (tmp_path / "a.mp4").read_bytes()
    assert first == (tmp_path / "b.mp4").read_bytes()
    assert first != (tmp_path / "c.mp4").read_bytes()
    frames, rate = read_video(tmp_path / "a.mp4")
    assert frames.shape == (60, HEIGHT * 2, WIDTH * 2) and rate == FPS
    # two-tone silhouettes survive the encoder: almost every pixel is near black or white
    assert ((frames < 40) | (frames > 215)).mean() > 0.97
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "b.mp4", "c.mp4"]  # no temporary files


def test_python_api_streams_what_generate_returns(run):
    dancer = dancenet.load(run)
    frames = dancer.generate(seconds=1, seed=3, temperature=0.8, sigma_temperature=0.5)
    assert frames.shape == (30, HEIGHT, WIDTH) and frames.dtype == np.uint8
    assert set(np.unique(frames)) <= {0, 255}
    chunks = list(dancer.stream(seconds=1, seed=3, temperature=0.8, sigma_temperature=0.5))
    assert np.array_equal(np.concatenate(chunks), frames)
    # lazy: the first chunk of a ten-hour video arrives without generating the rest
    first = next(iter(dancer.stream(seconds=36_000, seed=3)))
    assert len(first) == 64


def test_gif_png_folder_scale_and_prime(run, tmp_path):
    assert generate(run, tmp_path / "dance.gif", "--seconds", "1", "--scale", "1",
                    "--prime", "take1:20") == 0
    frames, _ = read_video(tmp_path / "dance.gif")
    assert frames.shape == (30, HEIGHT, WIDTH)
    assert generate(run, tmp_path / "frames", "--seconds", "0.5", "--scale", "3",
                    "--interpolation", "bilinear") == 0
    names = sorted(os.listdir(tmp_path / "frames"))
    assert len(names) == 15 and names[0] == "frame_000000.png"
    from PIL import Image
    assert Image.open(tmp_path / "frames" / names[0]).size == (WIDTH * 3, HEIGHT * 3)


def test_priming_starts_from_the_named_clip(run):
    dancer = dancenet.load(run)
    first = next(dancer.latents(1, seed=0, prime="take2:40", temperature=1e-6,
                                sigma_temperature=1e-6))
    other = next(dancer.latents(1, seed=0, prime="take0:40", temperature=1e-6,
                                sigma_temperature=1e-6))
    assert not np.allclose(first.numpy(), other.numpy())
    with pytest.raises(DancenetError, match="no clip named"):
        dancer.prime_latents("take9")
    with pytest.raises(DancenetError, match="past the end"):
        dancer.prime_latents("take0:60")


def test_whole_body_sampling_redraws_broken_frames(run, monkeypatch):
    """A draw judged broken is drawn again until one passes; only kept draws reach the dance."""
    dancer = dancenet.load(run)
    assert dancer.retries == dancenet.generate.RETRIES > 0
    calls = []

    def broken(self, latents, rows):  # a stand-in judge: a positive first latent "comes apart"
        calls.append(float(latents[0, 0]))
        return 1.0 if latents[0, 0] > 0 else 0.0

    monkeypatch.setattr(dancenet.generate.WholeBody, "__call__", broken)
    monkeypatch.setattr(dancenet.generate.WholeBody, "keep", lambda self, latents: None)
    dancer.retries = 0
    plain = torch.cat(list(dancer.latents(120, seed=5)))
    assert calls == [] and (plain[:, 0] > 0).mean(dtype=torch.float32) > 0.2  # the judge has work
    dancer.retries = 40
    whole = torch.cat(list(dancer.latents(120, seed=5)))
    assert (whole[:, 0] <= 0).all()
    assert len(calls) > 120  # some steps were drawn again ...
    assert sum(value <= 0 for value in calls) == 120  # ... until one passed, never after
    # a redraw never changes a step that passed: the first draws agree up to the first redraw
    first_redraw = next(index for index, value in enumerate(calls) if value > 0)
    torch.testing.assert_close(whole[:first_redraw], plain[:first_redraw])
    # when every draw fails, each step takes 2 retries + 1 draws (its redraws, then as many
    # escapes) and keeps the least broken
    calls.clear()
    monkeypatch.setattr(dancenet.generate.WholeBody, "__call__",
                        lambda self, latents, rows: calls.append(latents.clone()) or 0.5 + float(latents[0, 0].abs()))
    dancer.retries = 3
    kept = torch.cat(list(dancer.latents(30, seed=5)))
    assert len(calls) == 30 * 7
    for step in range(30):
        draws = torch.cat(calls[7 * step:7 * step + 7])
        torch.testing.assert_close(kept[step], draws[draws[:, 0].abs().argmin()])


def test_redraws_stay_within_a_budget_of_one_per_step(run, monkeypatch):
    """A model whose every frame comes apart (an undertrained one) is slowed down at most about
    twice by the checks, not 2 retries + 1 times."""
    from dancenet.generate import REDRAW_GRACE

    dancer = dancenet.load(run)
    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 1.0)  # every frame broken
    scored = []
    decode = dancer.decode
    monkeypatch.setattr(dancer, "decode", lambda latents: scored.append(len(latents)) or decode(latents))
    assert torch.cat(list(dancer.latents(200, seed=0))).shape[0] == 200
    assert set(scored) == {1}
    assert len(scored) == 200 + 200 + REDRAW_GRACE  # every step's first draw, one redraw per step and the grace


def test_redraws_carry_only_the_kept_draws_noise(run):
    """With correlated noise a redraw starts from the last kept draw's noise, and the kept draw's
    noise is what the next step continues from."""
    from dancenet.generate import next_step
    from dancenet.motion.mdn import CorrelatedNoise, MixtureParameters, sample

    dancer = dancenet.load(run)
    model, scaler = dancer.motion, dancer.scaler
    params, state = model(scaler.normalise(dancer.prime_latents("take0:20"))[None], None)
    params = MixtureParameters(*(value[:, -1] for value in params))
    noise, generator = CorrelatedNoise(0.7, 0.6), torch.Generator().manual_seed(4)
    noise.state = (torch.randn(1, 8, generator=torch.Generator().manual_seed(9)),
                   torch.randn(1, params.logits.shape[-1], generator=torch.Generator().manual_seed(10)))
    start = tuple(value.clone() for value in noise.state)
    order = iter([0.9, 0.1, 0.5, 0.3, 0.2])  # the second of five draws is the least broken
    draws = []

    def broken(latents, rows):
        draws.append(tuple(value.clone() for value in noise.state))
        return next(order)

    next_step(model, scaler, params, state, generator, 1.0, 1.0, noise, broken, 2)
    assert len(draws) == 5  # the draw, 2 redraws, 2 escapes
    # each draw mixed the starting noise (and component noise) with fresh ones, never a rejected
    # draw's: replaying the same generator from the starting state gives each draw's state
    # (redraw k of 2 at 1 - k / 2 of the correlations; the escapes from fresh noise)
    again = torch.Generator().manual_seed(4)
    for attempt, draw in enumerate(draws):
        replay = CorrelatedNoise(0.7, 0.6)
        replay.state, replay.loosen = tuple(value.clone() for value in start), min(attempt / 2, 1.0)
        sample(params, again, 1.0, 1.0, replay)
        for replayed, drawn in zip(replay.state, draw):
            torch.testing.assert_close(replayed, drawn)
    for carried, kept in zip(noise.state, draws[1]):  # the kept draw's noises carry on
        torch.testing.assert_close(carried, kept)
    assert noise.loosen == 0.0  # the next step's first draw keeps the full correlation


def test_a_failed_redraw_leaves_the_noise_at_its_full_correlation(run, monkeypatch):
    """A redraw that raises (a check interrupted, say) does not leave the noise loosened."""
    import dancenet.generate
    from dancenet.generate import next_step
    from dancenet.motion.mdn import CorrelatedNoise, MixtureParameters

    dancer = dancenet.load(run)
    model, scaler = dancer.motion, dancer.scaler
    params, state = model(scaler.normalise(dancer.prime_latents("take0:20"))[None], None)
    params = MixtureParameters(*(value[:, -1] for value in params))
    noise, draw, calls = CorrelatedNoise(0.7), dancenet.generate.draw, []

    def failing(*args):
        calls.append(noise.loosen)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return draw(*args)

    monkeypatch.setattr(dancenet.generate, "draw", failing)
    with pytest.raises(KeyboardInterrupt):
        next_step(model, scaler, params, state, torch.Generator().manual_seed(0), 1.0, 1.0, noise,
                  lambda latents, rows: torch.ones(len(latents), dtype=torch.float64), 3)
    assert calls == [0.0, pytest.approx(1 / 3)] and noise.loosen == 0.0


def test_loosened_noise_stays_standard_normal_and_tied_less():
    """A redraw's noise is still N(0, 1), correlated ``c (1 - loosen)`` with the previous draw's;
    fully loosened it is the fresh draw itself."""
    from dancenet.motion.mdn import CorrelatedNoise

    generator = torch.Generator().manual_seed(0)
    previous, fresh = (torch.randn(200_000, generator=generator) for _ in range(2))
    for loosen, correlation in ((0.0, 0.9), (0.5, 0.45), (1.0, 0.0)):
        noise = CorrelatedNoise(0.9)
        noise.previous, noise.loosen = previous, loosen
        drawn = noise(fresh)
        assert abs(float(drawn.std()) - 1.0) < 0.01
        assert abs(float(torch.corrcoef(torch.stack([drawn, previous]))[0, 1]) - correlation) < 0.01
    torch.testing.assert_close(drawn, fresh)


def test_redraws_get_away_from_where_strongly_correlated_noise_carries_the_dance(run):
    """At a high noise correlation every redraw at the full correlation lands next to the rejected
    draw (a copied pose stays copied); the loosened redraws get away from it."""
    from dancenet.generate import RETRIES, next_step
    from dancenet.motion.mdn import CorrelatedNoise, MixtureParameters

    dancer = dancenet.load(run)
    model, scaler = dancer.motion, dancer.scaler
    params, state = model(scaler.normalise(dancer.prime_latents("take0:20"))[None], None)
    params = MixtureParameters(*(value[:, -1] for value in params))
    noise, generator = CorrelatedNoise(0.99), torch.Generator().manual_seed(4)
    start = torch.randn(1, 8, generator=torch.Generator().manual_seed(9))
    noise.previous = start.clone()

    def broken(latents, rows):  # a draw still carried by the starting noise copies (say)
        similarity = torch.nn.functional.cosine_similarity(noise.previous, start)
        return (similarity > 0.8).to(torch.float64)

    next_step(model, scaler, params, state, generator, 1.0, 1.0, noise, broken, RETRIES)
    assert float(torch.nn.functional.cosine_similarity(noise.previous, start)) <= 0.8


def test_redraws_in_a_batch_replace_only_the_broken_rows(run):
    """Rollout checks redraw a batch of dances at once: each row keeps its own draw unless broken."""
    from dancenet.generate import next_step
    from dancenet.motion.mdn import CorrelatedNoise, MixtureParameters

    dancer = dancenet.load(run)
    model, scaler = dancer.motion, dancer.scaler
    context = scaler.normalise(dancer.prime_latents("take0:20"))[None].repeat(6, 1, 1)

    def steps(retries, judged):
        generator = torch.Generator().manual_seed(2)
        noise = CorrelatedNoise(torch.full((6, 1), 0.5))
        params, state = model(context, None)
        params = MixtureParameters(*(value[:, -1] for value in params))
        rows = []
        for _ in range(20):
            raw, params, state = next_step(model, scaler, params, state, generator, 1.0, 1.0, noise,
                                           judged, retries)
            rows.append(raw)
        return torch.stack(rows, 1)

    seen = []

    def broken(latents, rows):  # rows with a positive first latent "come apart"
        seen.append(len(latents))
        return (latents[:, 0] > 0).double()

    plain, whole = steps(0, None), steps(40, broken)
    assert (plain[:, :, 0] > 0).any() and (whole[:, :, 0] <= 0).all()
    assert seen[0] == 6 and min(seen) < 6  # redraws judge only the rows still broken
    # until the first broken draw, every row is the plain dance
    torch.testing.assert_close(whole[:, 0][plain[:, 0, 0] <= 0], plain[:, 0][plain[:, 0, 0] <= 0])


def blobs(count, seed, margin=0):
    """(count, 24, 32) bool: random blocky silhouettes, each unlike the others; ``margin``: cells
    of 4 px left empty at every edge, so a silhouette can move without leaving the frame."""
    cells = np.zeros((count, 6, 8), dtype=bool)
    cells[:, margin:6 - margin, margin:8 - margin] = \
        np.random.default_rng(seed).random((count, 6 - 2 * margin, 8 - 2 * margin)) < 0.4
    return cells.repeat(4, axis=1).repeat(4, axis=2)


def test_repeat_measure_is_evaluates_loop_measure_on_the_steps():
    """How closely a new step would make the last window repeat an earlier stretch: the best
    window similarity evaluate's loop analysis finds for the window ending at that step."""
    from dancenet.evaluate.metrics import loop_analysis
    from dancenet.generate import Repeats

    window = 4
    frames = blobs(40, 0)
    frames[22:34] = frames[6:18]  # a stretch repeated 16 steps later ...
    frames[26] = blobs(1, 1)[0]   # ... but for one frame
    repeats = Repeats(1, window, memory=1000)
    measured = []
    for step, frame in enumerate(frames):
        descriptor = repeats.describe(frame)
        lags = repeats.lags(0, descriptor)
        measured.append(repeats.similarity(0, lags))
        repeats.add(0, descriptor, lags)
    best = loop_analysis(frames, fps=window).best_similarity  # a 1 s window is `window` steps
    np.testing.assert_allclose(measured[window - 1:], best, atol=1e-5)
    assert max(measured[:22]) < 0.5  # unlike frames are far from a repeat
    assert measured[25] == pytest.approx(1.0) and max(measured[26:30]) < 0.9  # one frame differs
    assert min(measured[30:34]) == pytest.approx(1.0)
    # with a memory of 12 steps, once it has wrapped round: a repeat 10 steps back is found, one
    # 16 steps back is not looked for
    frames[36:40] = frames[26:30]
    short, found = Repeats(1, window, memory=12), []
    for frame in frames:
        descriptor = short.describe(frame)
        lags = short.lags(0, descriptor)
        found.append(short.similarity(0, lags))
        short.add(0, descriptor, lags)
    assert found[33] < 0.5 and found[39] == pytest.approx(1.0)


def test_draws_that_repeat_the_dance_are_drawn_again(monkeypatch):
    """The repeat guard: a draw that would make the last second replay an earlier one scores as
    broken (the closer the replay, the worse); a new pose passes; rejected draws are forgotten."""
    import dancenet.generate
    from dancenet.generate import BROKEN_SHARE, DrawCheck, Repeats

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)  # every pose whole

    window = 4
    bank = blobs(30, 2)
    decode = lambda latents: bank[latents[:, 0].long().numpy()]  # latent 0 names a frame of the bank
    check = DrawCheck(decode, Repeats(1, window, memory=100))
    one = torch.zeros(1, dtype=torch.long)

    def step(index, kept=True):
        latents = torch.tensor([[float(index), 0.0]])
        score = float(check(latents, one)[0])
        if kept:
            check.keep(latents)
        return score

    for index in [*range(10), 20, 3, 4]:  # ten poses, a new one, then 3 and 4 again
        assert step(index) <= BROKEN_SHARE
    assert step(5, kept=False) <= BROKEN_SHARE  # 3 4 5 after 20: still only 3 of 4 alike
    assert step(21) <= BROKEN_SHARE             # a new pose is kept instead ...
    for index in (6, 7):                          # ... and the dance goes back to the loop
        step(index)
    replay = step(8, kept=False)                  # 21 6 7 8 against 5 6 7 8: 3 of 4 alike
    assert replay <= BROKEN_SHARE
    step(8)
    replay = step(9, kept=False)                  # 6 7 8 9 replays 6 7 8 9 exactly
    assert replay > BROKEN_SHARE + 0.09
    assert step(22, kept=False) <= BROKEN_SHARE   # a new pose passes
    near = bank[9].copy()
    near[:4, :4] = ~near[:4, :4]                  # 9 with a corner changed: a close replay
    bank[23] = near
    assert BROKEN_SHARE < step(23, kept=False) < replay


def test_repeats_are_told_apart_by_row(monkeypatch):
    """In a batch (the rollout checks), each row is guarded against its own dance: the same draw
    replays one row and is new to the other; redraws of some rows are remembered for those rows."""
    import dancenet.generate
    from dancenet.generate import BROKEN_SHARE, DrawCheck, Repeats

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    bank = blobs(40, 3)
    check = DrawCheck(lambda latents: bank[latents[:, 0].long().numpy()], Repeats(2, 4, memory=100))
    both = torch.arange(2)
    for first, second in zip([*range(8), 2, 3, 4], [*range(20, 28), 30, 31, 32]):
        check(torch.tensor([[float(first), 0.0], [float(second), 0.0]]), both)
        check.keep(torch.tensor([[float(first), 0.0], [float(second), 0.0]]))
    # row 0 replayed 2 3 4; drawing 5 for both rows repeats row 0 only
    five = check.repeats.describe(bank[5])
    expected = check.repeats.lags(0, five)
    scores = check(torch.tensor([[5.0, 0.0], [5.0, 0.0]]), both)
    assert scores[0] > BROKEN_SHARE >= scores[1]
    # row 0 is drawn again alone and every redraw replays too, so it keeps 5; row 1 is drawn
    # again (say for a broken limb) and keeps 33
    assert check(torch.tensor([[33.0, 0.0]]), torch.tensor([1]))[0] <= BROKEN_SHARE
    check.keep(torch.tensor([[5.0, 0.0], [33.0, 0.0]]))
    assert check.repeats.count == [12, 12]
    np.testing.assert_allclose(check.repeats.store[0][11], five)
    np.testing.assert_allclose(check.repeats.store[1][11], check.repeats.describe(bank[33]))
    np.testing.assert_allclose(check.repeats.similar[0][-1], expected)  # row 0's own lags


def test_a_centred_vae_s_place_glides_where_draws_are_checked_and_read_back(run, monkeypatch):
    """The last latent dimension of a centred VAE (the dancer's place) moves a third of the way
    from the last kept frame's place to the drawn one, in every draw and redraw, and the model
    reads back what is kept; the other dimensions are drawn as before."""
    from dancenet.generate import PLACE_GLIDE, draw, rollout

    dancer = dancenet.load(run)
    model, scaler = dancer.motion, dancer.scaler
    context = torch.from_numpy(np.load(run / "latents.npz")["mean"][:10])
    params, _ = model(scaler.normalise(context)[None], None)
    params = type(params)(*(value[:, -1] for value in params))
    place = torch.tensor([0.25])
    plain, plain_back = draw(model, scaler, params, torch.Generator().manual_seed(3), 1.0, 1.0)
    glided, glided_back = draw(model, scaler, params, torch.Generator().manual_seed(3), 1.0, 1.0, place=place)
    torch.testing.assert_close(glided[:, :-1], plain[:, :-1])
    torch.testing.assert_close(glided[:, -1], place + PLACE_GLIDE * (plain[:, -1] - place))
    torch.testing.assert_close(glided_back, scaler.normalise(glided))
    torch.testing.assert_close(plain_back, scaler.normalise(plain))

    def steps(glide, broken=None, retries=0):
        return torch.cat(list(rollout(model, scaler, context, 90, torch.Generator().manual_seed(0),
                                      sigma_temperature=1.0, broken=broken, retries=retries, glide=glide)))

    places, next_step = [], dancenet.generate.next_step
    monkeypatch.setattr(dancenet.generate, "next_step",
                        lambda *args: places.append(args[-1]) or next_step(*args))
    free, smooth = steps(False), steps(True)
    # each step glides from the place the step before kept (the first from the context's)
    assert places[:90] == [None] * 90
    torch.testing.assert_close(torch.cat(places[90:]), torch.cat([context[-1:, -1], smooth[:-1, -1]]))
    assert smooth[:, -1].diff().abs().mean() < 0.6 * free[:, -1].diff().abs().mean()  # no jumps
    monkeypatch.undo()
    # redraws glide too: the first step's 5 draws (1 draw, 2 redraws, 2 escapes: all judged
    # broken) reach the check glided from the context's place, and the kept one is one of them
    seen = {False: [], True: []}

    def check_for(glide):
        def check(latents, rows):
            seen[glide].append(latents[:, -1].clone())
            return torch.full((len(latents),), 0.5)
        return check

    kept = {glide: steps(glide, check_for(glide), retries=2) for glide in (False, True)}
    start = context[-1, -1]
    free, glided = torch.cat(seen[False][:5]), torch.cat(seen[True][:5])
    assert len(set(free.tolist())) == 5
    torch.testing.assert_close(glided, start + PLACE_GLIDE * (free - start))
    assert any(torch.isclose(kept[True][0, -1], glided))


def test_generation_redraws_a_dance_that_replays_itself(run, monkeypatch):
    """Every frame whole, a nearly still spread that settles into a loop: the repeat guard still
    draws again, and only where the last second replays an earlier one."""
    from dancenet.evaluate.metrics import loop_analysis

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    dancer = dancenet.load(run)
    dancer.copies = None  # the repeat guard alone (this tiny model copies its footage too)
    draws = []
    decode = dancer.decode
    monkeypatch.setattr(dancer, "decode", lambda latents: draws.append(len(latents)) or decode(latents))
    dancer.retries = 0
    plain = dancer.generate(seconds=4, seed=1, sigma_temperature=0.1)
    draws.remove(120)  # the video itself, decoded in one batch
    assert draws == [] and loop_analysis(plain, FPS).ratio > 0.5  # the plain dance loops
    dancer.retries = 3
    guarded = dancer.generate(seconds=4, seed=1, sigma_temperature=0.1)
    assert len(draws) > 120 + 5  # 120 steps, and redraws where a window replayed
    assert loop_analysis(guarded, FPS).ratio < 0.5 * loop_analysis(plain, FPS).ratio
    draws.clear()
    dancer.generate(seconds=1.5, seed=1, sigma_temperature=0.1)
    assert len(draws) == 45  # no stretch can repeat before 2 s: one draw per step


def test_copy_measure_is_evaluates_memorisation():
    """How closely a frame copies a training frame: evaluate's best-match IoU, the same number."""
    from dancenet.copies import Copies
    from dancenet.evaluate.metrics import best_match_iou
    from dancenet.generate import Repeats

    library, frames = blobs(50, 4), blobs(8, 5)
    frames[3] = library[17]
    copies = Copies.from_frames(library)
    closest = [copies.closest(Repeats.describe(frame)) for frame in frames]
    np.testing.assert_allclose(closest, best_match_iou(frames, library), rtol=1e-6)
    assert closest[3] == pytest.approx(1.0) and max(closest[:3] + closest[4:]) < copies.threshold
    assert Copies(np.zeros((0, 48))).closest(np.ones(48)) == 0.0  # no training frames: no copy
    empty = np.zeros_like(library[:2])
    empty[1, 0, 0] = True
    # an empty frame copies only an empty training frame, as evaluate counts it
    assert Copies.from_frames(empty).closest(np.zeros(48, np.float32)) == 1.0
    assert Copies.from_frames(empty[1:]).closest(np.zeros(48, np.float32)) == 0.0


def test_pose_measure_is_evaluates_pose_match():
    """How well a frame's shape matches any training frame's, wherever it stands: evaluate's
    pose match, the same number; no poses to compare with judge nothing."""
    from dancenet.copies import FACTOR, Copies
    from dancenet.evaluate.metrics import downsample, pose_match
    from dancenet.generate import Repeats

    library, frames = blobs(50, 4, margin=1), blobs(8, 5)
    frames[3] = 0
    frames[3][:, 4:] = library[17][:, :-4]  # training frame 17, a block to the right
    copies = Copies.from_frames(library)
    poses = [copies.pose(Repeats.describe(frame)) for frame in frames]
    np.testing.assert_allclose(poses, pose_match(frames, library), rtol=1e-6)
    assert poses[3] == pytest.approx(1.0) and copies.closest(Repeats.describe(frames[3])) < 0.9
    counts = np.rint(downsample(library, FACTOR) * FACTOR * FACTOR).astype(np.uint8)
    np.testing.assert_allclose([Copies.from_counts(counts).pose(Repeats.describe(frame)) for frame in frames],
                               poses, rtol=1e-6)
    assert Copies(np.zeros((0, 48))).pose(np.ones(48)) == 1.0
    assert copies.pose(np.zeros(48, np.float32)) == 1.0  # an empty frame is no pose (the body check counts it)


def test_draws_unlike_any_training_pose_are_drawn_again(monkeypatch):
    """The pose guard: a draw whose shape matches no training frame's (a body melted or
    doubled) scores as broken, the less alike the worse; a training pose danced elsewhere passes."""
    import dancenet.generate
    from dancenet.copies import Copies
    from dancenet.generate import BROKEN_SHARE, DrawCheck

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    library = blobs(10, 6, margin=1)
    moved = np.zeros_like(library[:1])
    moved[0, 4:] = library[3, :-4]  # a training pose, one block lower: not a copy, a pose it knows
    bank = np.concatenate([library, moved, blobs(2, 7), np.ones_like(moved)])
    copies = Copies.from_frames(library)
    poses = [copies.pose(dancenet.generate.Repeats.describe(frame)) for frame in bank[10:]]
    assert poses[0] == pytest.approx(1.0) and poses[3] < poses[1] < copies.floor and poses[2] < copies.floor
    check = DrawCheck(lambda latents: bank[latents[:, 0].long().numpy()], copies=copies)
    scores = check(torch.tensor([[10.0, 0.0], [11.0, 0.0], [13.0, 0.0]]), torch.arange(3))
    assert scores[0] <= BROKEN_SHARE < scores[1] < scores[2]


def test_draws_that_copy_a_training_frame_are_drawn_again(monkeypatch):
    """The copy guard: a draw whose frame copies a training frame scores as broken, the closer
    the copy the worse; a known pose danced elsewhere passes."""
    import dancenet.generate
    from dancenet.copies import Copies
    from dancenet.generate import BROKEN_SHARE, DrawCheck

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    bank = blobs(30, 6, margin=1)
    near = bank[2].copy()
    near[4:6, 4:6] = ~near[4:6, 4:6]  # training frame 2 with a corner changed: still a copy
    bank[20] = near
    bank[25] = 0
    bank[25][:, 4:] = bank[5][:, :-4]  # training pose 5 a block to the right: no copy, a pose it knows
    check = DrawCheck(lambda latents: bank[latents[:, 0].long().numpy()], copies=Copies.from_frames(bank[:10]))
    scores = check(torch.tensor([[2.0, 0.0], [20.0, 0.0], [25.0, 0.0]]), torch.arange(3))
    assert scores[0] > scores[1] > BROKEN_SHARE >= scores[2]


def test_the_copy_guard_redraws_a_frame_evaluate_counts_as_copied_at_the_threshold(monkeypatch):
    """A frame whose IoU with a training frame is the copied threshold itself (19 of its 20
    blocks: 0.95, which float32 rounds down) is a copy to evaluate, so the guard redraws it too;
    one block fewer is not a copy to either."""
    import dancenet.generate
    from dancenet.copies import Copies
    from dancenet.evaluate.metrics import best_match_iou
    from dancenet.evaluate.suite import MetricSettings
    from dancenet.generate import BROKEN_SHARE, DrawCheck

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    frames = np.zeros((3, 16, 48), dtype=bool)
    frames[0, :8, :40] = True  # the training frame: 2 x 10 blocks of 4 x 4 pixels
    frames[1] = frames[0]
    frames[1, 4:8, 36:40] = False  # 19 of its blocks
    frames[2] = frames[1]
    frames[2, 4:8, 32:36] = False  # 18
    copied = best_match_iou(frames[1:], frames[:1]) >= MetricSettings().copied_iou  # as evaluate counts
    assert copied.tolist() == [True, False]
    check = DrawCheck(lambda latents: frames[latents[:, 0].long().numpy()], copies=Copies.from_frames(frames[:1]))
    scores = check(torch.tensor([[1.0, 0.0], [2.0, 0.0]]), torch.arange(2))
    assert scores[0] > BROKEN_SHARE >= scores[1]


def test_redraws_widen_the_spread(run, monkeypatch):
    """Redraw k of R draws at 1 + REDRAW_WIDEN k / R times the spread: where the model is sure
    of its next pose, draws at its own spread would land on it again and again. Where all R fail,
    R escapes draw wider still."""
    import dancenet.generate
    from dancenet.generate import ESCAPE_WIDEN, REDRAW_WIDEN, next_step
    from dancenet.motion.mdn import MixtureParameters

    dancer = dancenet.load(run)
    model, scaler = dancer.motion, dancer.scaler
    params, state = model(scaler.normalise(dancer.prime_latents("take0:20"))[None], None)
    params = MixtureParameters(*(value[:, -1] for value in params))
    spreads, draw = [], dancenet.generate.draw
    monkeypatch.setattr(dancenet.generate, "draw", lambda *args: spreads.append(args[5]) or draw(*args))
    next_step(model, scaler, params, state, torch.Generator().manual_seed(0), 1.0, 0.5, None,
              lambda latents, rows: torch.ones(len(latents), dtype=torch.float64), 4)
    # every draw fails: 4 redraws, then 4 escapes wider still
    widest = 0.5 * (1 + REDRAW_WIDEN)
    assert spreads == pytest.approx([0.5 * (1 + REDRAW_WIDEN * k / 4) for k in range(5)] +
                                    [widest * (1 + ESCAPE_WIDEN * k / 4) for k in range(1, 5)])
    assert spreads[4] == pytest.approx(widest) and spreads[-1] > spreads[4]
    spreads.clear()  # a step whose third redraw passes draws no more
    verdicts = iter([1.0, 1.0, 1.0, 0.0])
    next_step(model, scaler, params, state, torch.Generator().manual_seed(0), 1.0, 0.5, None,
              lambda latents, rows: torch.tensor([next(verdicts)], dtype=torch.float64), 4)
    assert len(spreads) == 4


def test_motion_training_keeps_the_training_frames_generation_checks(run, tmp_path, capsys):
    """`train motion` writes the frames of its footage (not of its test clip) that the copy guard
    compares with, decoded and as filmed; a run without the file, or with a stale one, builds the
    same frames from its latents and writes nothing."""
    from dancenet.copies import Copies, library_path, load_copies

    path = library_path(run, "motion")
    with np.load(path) as data:
        counts, footage, clips = data["counts"], data["footage"], list(data["clips"])
    metadata = json.loads((run / "motion.json").read_text())["metadata"]
    held = set(metadata["test_clips"])
    assert held and clips == [name for name in ("take0", "take1", "take2") if name not in held]
    assert set(metadata["val_clips"]) <= set(clips)  # footage too, though it only chose the epoch
    assert counts.shape == footage.shape == (60 * len(clips), HEIGHT // 4, WIDTH // 4)
    dancer = dancenet.load(run)
    assert len(dancer.copies) == 2 * 60 * len(clips)  # each frame decoded and as filmed
    # the dancer's own decoded training frames match themselves: every one is a copy
    latents = np.load(run / "latents.npz")
    first = int(latents["clip_starts"][list(latents["clip_names"]).index(clips[0])])
    frame = dancer.decode(torch.from_numpy(latents["mean"][first:first + 1]))[0]
    assert dancer.copies.closest(dancenet.generate.Repeats.describe(frame)) == pytest.approx(1.0)
    # and so do the frames as filmed, which the tiny VAE decodes far from exactly
    filmed = figure(60, 1.3 * int(clips[0][-1]))
    decoded_only = Copies.from_counts(counts)
    described = [dancenet.generate.Repeats.describe(shot) for shot in filmed[::10]]
    assert min(dancer.copies.closest(one) for one in described) == pytest.approx(1.0)
    assert max(decoded_only.closest(one) for one in described) < 0.95
    # poses are matched on the frames as filmed, as evaluate matches them
    assert min(dancer.copies.pose(one) for one in described) == pytest.approx(1.0)
    assert max(decoded_only.pose(one) for one in described) < 0.95

    def rebuilt(folder, vae_hash=dancer.vae.vae_hash):
        return load_copies(folder, "motion", dancer.metadata, vae_hash, dancer.decode, (HEIGHT, WIDTH), 7)

    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("*.library.npz", "*-train"))
    np.testing.assert_array_equal(rebuilt(bare).features, dancer.copies.features)
    assert main(["generate", str(bare), "-o", str(tmp_path / "dance.gif"), "--seconds", "0.5"]) == 0
    assert "keeps no training frames for the copy guard" in capsys.readouterr().err  # says why it is slower
    assert not list(bare.glob("*.library.npz"))  # nothing written into the run
    # a library left by a run stopped before its final export (other held-out clips): not used
    with np.load(path) as data:
        stale = {key: data[key] for key in data.files}
    with open(bare / "motion.library.npz", "wb") as handle:
        np.savez(handle, **{**stale, "counts": np.zeros_like(stale["counts"]), "held_out": np.array(["take9"])})
    np.testing.assert_array_equal(rebuilt(bare).features, dancer.copies.features)
    capsys.readouterr()
    assert main(["generate", str(bare), "-o", str(tmp_path / "stale.gif"), "--seconds", "0.5"]) == 0
    assert "motion.library.npz was made for another VAE, dataset or held-out clips" in capsys.readouterr().err
    assert main(["generate", str(run), "-o", str(tmp_path / "current.gif"), "--seconds", "0.5"]) == 0
    assert "note" not in capsys.readouterr().err  # its own library: nothing to say
    assert rebuilt(run, "0" * 64) is None  # latents of another VAE: no guard, no error
    assert (dancer.copies.source, rebuilt(bare).source) == ("library", "stale")
    (bare / "motion.library.npz").unlink()
    assert rebuilt(bare).source == "latents"
    (bare / "latents.npz").unlink()  # neither frames nor latents: generating says the guard is off
    assert main(["generate", str(bare), "-o", str(tmp_path / "bare.gif"), "--seconds", "0.5"]) == 0
    assert "generating without the copy guard" in capsys.readouterr().err


def test_latents_encoded_before_the_footage_was_kept_guard_with_decoded_frames(run, tmp_path):
    """A latents.npz without ``footage`` (dancenet before 2026-11-30) still loads, and its copy guard
    compares with the decoded frames alone, in memory and in a library written from it."""
    from dancenet.copies import library_path, load_copies, write_library
    from dancenet.latents import load_latents, save_latents

    folder = tmp_path / "old"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("*.library.npz", "*-train"))
    latents = load_latents(folder / "latents.npz")
    latents.footage = None
    save_latents(folder / "latents.npz", latents)
    with np.load(folder / "latents.npz") as data:
        assert "footage" not in data.files
    dancer = dancenet.load(folder)
    current = dancenet.load(run)
    assert len(dancer.copies) * 2 == len(current.copies)
    np.testing.assert_array_equal(dancer.copies.features, current.copies.features[:, :len(dancer.copies)])
    write_library(folder, "motion", dancer.decode)
    with np.load(library_path(folder, "motion")) as data:
        assert "footage" not in data.files
    guard = load_copies(folder, "motion", dancer.metadata, dancer.vae.vae_hash, dancer.decode, (HEIGHT, WIDTH))
    assert guard.source == "library" and len(guard) == len(dancer.copies)
    # encoded again, now with the footage: that old library is stale, and the frames as filmed are guarded
    shutil.copyfile(run / "latents.npz", folder / "latents.npz")
    guard = load_copies(folder, "motion", dancer.metadata, dancer.vae.vae_hash, dancer.decode, (HEIGHT, WIDTH))
    assert guard.source == "stale" and len(guard) == len(current.copies)
    # footage that is not one block-count frame per latent row: a one-line error naming the file
    with np.load(run / "latents.npz") as data:
        arrays = {key: data[key] for key in data.files}
    for bad in (arrays["footage"][1:], arrays["footage"].astype(np.int16), arrays["footage"] + 17):
        np.savez(folder / "latents.npz", **{**arrays, "footage": bad})
        with pytest.raises(DancenetError, match="latents.npz: holds footage that is not one block-count frame"):
            load_latents(folder / "latents.npz")


def test_the_copy_guard_keeps_dances_off_the_filmed_frames(run, tmp_path, monkeypatch):
    """With a plain dance's own frames as the library's frames as filmed (and nothing decoded to
    match), the guarded dance of the same seed draws again and copies far fewer of them."""
    from dancenet.copies import block_counts, library_path
    from dancenet.evaluate.metrics import best_match_iou
    from dancenet.latents import load_latents, save_latents

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    folder = tmp_path / "run"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("*-train"))
    dancer = dancenet.load(folder)
    dancer.retries = 0
    plain = dancer.generate(seconds=2, seed=2)
    path = library_path(folder, "motion")
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    filmed = block_counts(plain)
    with open(path, "wb") as handle:
        np.savez(handle, **{**arrays, "counts": np.zeros_like(filmed), "footage": filmed})
    dancer = dancenet.load(folder)
    assert dancer.copies.source == "library" and len(dancer.copies) == 2 * len(plain)
    guarded = dancer.generate(seconds=2, seed=2)
    copied = lambda frames: float((best_match_iou(frames, plain) >= 0.95).mean())
    assert copied(plain) == 1.0 and copied(guarded) < 0.5
    # the control: the same library without the frames as filmed (latents encoded before dancenet
    # kept them) leaves the dance as it was
    latents = load_latents(folder / "latents.npz")
    latents.footage = None
    save_latents(folder / "latents.npz", latents)
    with open(path, "wb") as handle:
        kept = {key: value for key, value in arrays.items() if key != "footage"}
        np.savez(handle, **{**kept, "counts": np.zeros_like(filmed)})
    dancer = dancenet.load(folder)
    assert dancer.copies.source == "library" and len(dancer.copies) == len(plain)
    assert copied(dancer.generate(seconds=2, seed=2)) > 0.9  # (the repeat guard still redraws a step or two)


@pytest.mark.parametrize("damage", ["text", "truncated", "flipped", "shape", "values", "footage"])
def test_a_damaged_library_is_a_one_line_error(run, tmp_path, capsys, damage):
    from dancenet.copies import library_path

    folder = tmp_path / "run"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("*-train"))
    path = library_path(folder, "motion")
    content = path.read_bytes()
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    if damage == "text":
        path.write_bytes(b"not frames")
    elif damage == "truncated":
        path.write_bytes(content[:len(content) // 2])
    elif damage == "flipped":
        path.write_bytes(content[:200] + bytes([content[200] ^ 0xFF]) + content[201:])
    elif damage == "footage":  # frames as filmed that are not the decoded frames' rows
        with open(path, "wb") as handle:
            np.savez(handle, **{**arrays, "footage": arrays["footage"][1:]})
    else:
        counts = arrays["counts"][:, :5, :5] if damage == "shape" else arrays["counts"] + 20
        with open(path, "wb") as handle:
            np.savez(handle, **{**arrays, "counts": counts})
    assert generate(folder, tmp_path / "out.mp4", "--seconds", "1") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "motion.library.npz: is not a file of training frames" in error
    assert not (tmp_path / "out.mp4").exists()


def test_generation_redraws_draws_that_copy_training_frames(run, monkeypatch):
    """With a plain dance's own frames as the training frames, the guarded dance of the same seed
    draws again and copies far fewer of them."""
    from dancenet.copies import Copies
    from dancenet.evaluate.metrics import best_match_iou

    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: 0.0)
    dancer = dancenet.load(run)
    dancer.retries = 0
    plain = dancer.generate(seconds=2, seed=2)
    dancer.copies = Copies.from_frames(plain)
    dancer.retries = 3
    draws = []
    decode = dancer.decode
    monkeypatch.setattr(dancer, "decode", lambda latents: draws.append(len(latents)) or decode(latents))
    guarded = dancer.generate(seconds=2, seed=2)
    assert len(draws) > 60 + 20  # 60 steps and many redraws
    copied = lambda frames: float((best_match_iou(frames, plain) >= 0.95).mean())
    assert copied(plain) == 1.0 and copied(guarded) < 0.5


def test_retries_option_sets_the_redraws(run, tmp_path, monkeypatch):
    judged = []
    original = dancenet.generate.WholeBody.__call__
    monkeypatch.setattr(dancenet.generate.WholeBody, "__call__",
                        lambda self, latents, rows: judged.append(1) or original(self, latents, rows) * 0)
    assert generate(run, tmp_path / "none.mp4", "--seconds", "1", "--retries", "0") == 0
    assert judged == []
    assert generate(run, tmp_path / "default.mp4", "--seconds", "1") == 0
    assert len(judged) == 30  # each step judged once: every draw passed
    assert (tmp_path / "none.mp4").read_bytes() == (tmp_path / "default.mp4").read_bytes()


def test_frames_checked_for_whole_bodies_are_reused_not_decoded_again(run, monkeypatch):
    dancer = dancenet.load(run)
    batches = []
    decode = dancer.decode
    monkeypatch.setattr(dancer, "decode", lambda latents: batches.append(len(latents)) or decode(latents))
    video = dancer.generate(seconds=2, seed=1)
    assert len(batches) >= 60 and set(batches) == {1}  # each draw decoded by its check, no frame again
    batches.clear()
    expected = dancer.shown(decode(torch.cat(list(dancer.latents(60, seed=1)))))
    np.testing.assert_array_equal(video, expected)  # the same frames as decoding the dance anew
    dancer.retries = 0
    batches.clear()
    dancer.generate(seconds=2, seed=1)
    assert batches == [60]


def test_the_video_drops_the_specks_of_whole_frames_and_shows_frames_that_came_apart(run, monkeypatch):
    dancer = dancenet.load(run)
    body = figure(1, 0.0)[0]
    specked, apart = body.copy(), body.copy()
    specked[0, 0] = specked[HEIGHT - 1, WIDTH - 1] = True  # two dots in the corners, far from her
    apart[HEIGHT - 6:, :6] = True  # a piece off her body of 36 pixels: over 2% of her
    assert 36 > dancenet.generate.BROKEN_SHARE * body.sum()
    pair = np.stack([specked, apart]).astype(np.uint8) * 255
    checked = []

    def decode(latents):  # specked and apart by turns, one frame a step when checking
        checked.append(np.resize(pair, (len(latents), HEIGHT, WIDTH)))
        return checked[-1].copy()

    monkeypatch.setattr(dancer, "decode", decode)
    dancer.retries = 0  # one decode of the whole dance
    video = dancer.generate(seconds=1, seed=0)
    assert (video[0::2] == body * 255).all() and (video[1::2] == apart * 255).all()
    judged = []
    share = dancenet.generate.broken_share
    monkeypatch.setattr(dancenet.generate, "broken_share", lambda frame: judged.append(frame.copy()) or share(frame))
    dancer.retries = 7
    video = dancer.generate(seconds=1, seed=0)  # each draw decoded by its check: always specked
    assert (video == body * 255).all()
    assert judged and all(np.array_equal(frame, specked * 255) for frame in judged)  # checked as decoded


def test_interpolation_between_strided_steps():
    previous = torch.zeros(2)
    steps = iter([torch.tensor([[3.0, 0.0], [6.0, 3.0]]), torch.tensor([[9.0, 9.0], [0.0, 0.0]])])
    filled = torch.cat(list(interpolate(steps, previous, 3, 10)))
    assert filled.shape == (10, 2)
    torch.testing.assert_close(filled[:, 0], torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 6]))
    torch.testing.assert_close(filled[2::3], torch.tensor([[3.0, 0.0], [6.0, 3.0], [9.0, 9.0]]))


def test_a_strided_model_generates_every_frame(run, tmp_path):
    recipe = tmp_path / "strided.yaml"
    recipe.write_text("preset: default\nmodel: {hidden_size: 32, num_layers: 1, num_mixtures: 3, "
                      "frame_stride: 2}\ntraining: {epochs: 2, batch_size: 4, sequence_length: 8, "
                      "val_clips: 1}\n")
    assert main(["train", "motion", str(run), "--config", str(recipe), "--name", "strided",
                 "--quiet"]) == 0
    dancer = dancenet.load(run, motion_name="strided")
    assert dancer.fps == FPS and dancer.motion.config.frame_stride == 2
    whole = torch.cat(list(dancer.latents(25, seed=3, prime="take1:21")))
    pieces = torch.cat(list(dancer.latents(25, seed=3, prime="take1:21", chunk=4)))
    assert whole.shape == (25, 8)
    torch.testing.assert_close(pieces, whole)
    # the frames between two steps lie halfway, the first between the primed frame and step one:
    # the motion is smooth at the video's rate and continues from the named frame
    torch.testing.assert_close(whole[2:-1:2], (whole[1:-2:2] + whole[3::2]) / 2)
    torch.testing.assert_close(whole[0], (dancer.prime_latents("take1:21")[-1] + whole[1]) / 2)
    batches, decode = [], dancer.decode
    dancer.decode = lambda latents: batches.append(len(latents)) or decode(latents)
    dancer.generate(seconds=1, seed=3)
    assert [size for size in batches if size > 1] == [15]  # the steps' frames come from their checks
    assert generate(run, tmp_path / "strided.mp4", "--motion", "strided", "--seconds", "1") == 0
    assert len(read_video(tmp_path / "strided.mp4")[0]) == 30
    # evaluate's motion NLL feeds the model every second frame of each clip, as training did
    from dancenet.dataset import Dataset
    from dancenet.evaluate.suite import model_metrics
    from dancenet.motion.model import validation_nll

    dataset = Dataset(run.parent / "data")
    clips = dataset.clips[1:]
    with torch.inference_mode():
        means = [dancer.vae.encode(torch.from_numpy(dataset.frames(clip.start, clip.stop))).mean[::2]
                 for clip in clips]
        expected = validation_nll(dancer.motion, dancer.scaler, torch.cat(means), [(0, 30), (30, 60)])
    measured = model_metrics(run, dataset, clips, motion_name="strided")["motion_nll"]
    assert measured == pytest.approx(float(expected), rel=1e-5)


def test_upscale_nearest_and_bilinear():
    frames = np.zeros((2, 3, 5), np.uint8)
    frames[:, 1, 2] = 255
    nearest = upscale(frames, 4, "nearest")
    assert nearest.shape == (2, 12, 20) and nearest[:, 4:8, 8:12].min() == 255
    assert nearest.sum() == 16 * 255 * 2
    bilinear = upscale(frames, 4, "bilinear")
    assert bilinear.shape == (2, 12, 20) and 0 < np.count_nonzero((bilinear > 0) & (bilinear < 255))


def test_odd_sizes_are_padded_for_h264_and_failures_leave_nothing(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", 25, 7, 9, scale=1) as writer:
        writer.write(np.full((5, 7, 9), 255, np.uint8))
    frames, rate = read_video(tmp_path / "odd.mp4")
    assert frames.shape == (5, 8, 10) and rate == 25
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "broken.mp4", 25, 8, 8) as writer:
            writer.write(np.zeros((3, 8, 8), np.uint8))
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["odd.mp4"]


@pytest.mark.parametrize("options", [
    ["--seconds", "0"], ["--seconds", "-3"], ["--temperature", "0"], ["--temperature", "-1"],
    ["--sigma-temperature", "0"], ["--prime", "nosuchclip"], ["--scale", "0"],
    ["--noise-correlation", "1"], ["--noise-correlation", "-0.1"], ["--retries", "-1"], ["--retries", "101"],
    ["--component-correlation", "1"], ["--component-correlation", "nan"],
])
def test_bad_options_are_one_line_errors_without_output(run, tmp_path, capsys, options):
    assert generate(run, tmp_path / "out.mp4", *options) == 2
    error = capsys.readouterr().err
    assert error.startswith("dancenet: error:") and len(error.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_the_models_recommended_noise_correlation_applies_unless_one_is_given(run, tmp_path):
    runs = {}
    for value in (0.0, 0.8):
        runs[value] = tmp_path / f"recommends-{value}"
        shutil.copytree(run, runs[value])
        info = json.loads((runs[value] / "motion.json").read_text())
        info["metadata"]["sampling"]["noise_correlation"] = value
        (runs[value] / "motion.json").write_text(json.dumps(info))
        assert dancenet.load(runs[value]).noise_correlation == value
    videos = {name: tmp_path / f"{name}.mp4" for name in ("plain", "recommended", "given", "overridden")}
    assert generate(runs[0.0], videos["plain"], "--seconds", "1") == 0
    assert generate(runs[0.8], videos["recommended"], "--seconds", "1") == 0
    assert generate(runs[0.0], videos["given"], "--seconds", "1", "--noise-correlation", "0.8") == 0
    assert generate(runs[0.8], videos["overridden"], "--seconds", "1", "--noise-correlation", "0") == 0
    data = {name: path.read_bytes() for name, path in videos.items()}
    assert data["recommended"] == data["given"] != data["plain"] == data["overridden"]


def test_component_correlation_comes_from_the_model_else_the_default_and_can_be_set(run, tmp_path):
    """Generation correlates the component draws as the model says, else COMPONENT_CORRELATION;
    --component-correlation sets it, and 0 draws each step's component afresh."""
    from dancenet.generate import COMPONENT_CORRELATION

    assert dancenet.load(run).component_correlation == COMPONENT_CORRELATION
    info = json.loads((run / "motion.json").read_text())
    assert info["metadata"]["sampling"]["component_correlation"] == COMPONENT_CORRELATION  # training's
    recommends = tmp_path / "recommends-0.6"
    shutil.copytree(run, recommends)
    info["metadata"]["sampling"]["component_correlation"] = 0.6
    (recommends / "motion.json").write_text(json.dumps(info))
    assert dancenet.load(recommends).component_correlation == 0.6  # a model's own value wins
    videos = {name: tmp_path / f"{name}.mp4" for name in ("default", "given", "calm", "recommended", "fresh")}
    assert generate(run, videos["default"], "--seconds", "1") == 0
    assert generate(run, videos["given"], "--seconds", "1", "--component-correlation", str(COMPONENT_CORRELATION)) == 0
    assert generate(run, videos["calm"], "--seconds", "1", "--component-correlation", "0.6") == 0
    assert generate(recommends, videos["recommended"], "--seconds", "1") == 0
    assert generate(recommends, videos["fresh"], "--seconds", "1", "--component-correlation", "0") == 0
    data = {name: path.read_bytes() for name, path in videos.items()}
    assert data["default"] == data["given"] and data["calm"] == data["recommended"] != data["fresh"]
    dancer = dancenet.load(run)
    dancer.component_correlation = 0.0
    fresh = dancer.generate(seconds=1)
    dancer.component_correlation = 0.6
    assert not np.array_equal(fresh, dancer.generate(seconds=1))


def test_bad_outputs_and_runs(run, tmp_path, capsys):
    assert generate(run, tmp_path / "out.avi") == 2
    assert "unknown output extension" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert generate(run, tmp_path / "file" / "out.mp4") == 2
    assert "cannot be written" in capsys.readouterr().err
    # a run with a VAE but no motion model
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("vae.safetensors", "vae.json"):
        (bare / name).write_bytes((run / name).read_bytes())
    assert generate(bare, tmp_path / "out.mp4") == 2
    assert "no motion model" in capsys.readouterr().err
    # a motion model trained on another VAE's latents
    for name in ("motion.safetensors", "motion.json"):
        (bare / name).write_bytes((run / name).read_bytes())
    metadata = json.loads((bare / "motion.json").read_text())
    metadata["metadata"]["vae_hash"] = "0" * 64
    (bare / "motion.json").write_text(json.dumps(metadata))
    assert generate(bare, tmp_path / "out.mp4") == 2
    assert "another VAE" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bare", "file"]


def test_without_run_the_bundled_model_is_used(tmp_path):
    code = main(["generate", "-o", str(tmp_path / "out.mp4"), "--seconds", "0.5", "--quiet"])
    assert code == 0 and (tmp_path / "out.mp4").stat().st_size > 0
    dancer = dancenet.load(None)
    frames = dancer.generate(seconds=2, seed=0)
    assert frames.shape == (60, dancer.height, dancer.width)
    # the shipped model dances: a dancer in every frame, and the pose changes
    assert (frames.reshape(len(frames), -1) > 0).mean(axis=1).min() > 0.01
    assert (frames[1:] != frames[:-1]).mean() > 0.001
    assert dancer.temperatures(None, None) == (1.0, 0.75)
    assert len(dancer.copies) == 2 * 4000  # its training frames ship with it, decoded by its VAE and as filmed


def test_a_missing_bundled_model_is_named(tmp_path, monkeypatch, capsys):
    import dancenet.generate

    monkeypatch.setattr(dancenet.generate, "BUNDLED_DIRECTORY", tmp_path / "nothing")
    code = main(["generate", "-o", str(tmp_path / "out.mp4"), "--seconds", "0.5", "--quiet"])
    assert code == 2 and "no bundled model" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_background_writer_writes_the_bytes_of_a_sequential_write(tmp_path):
    # odd sizes (padding), nearest at scale 1 and 3, bilinear, and GIF, chunks of uneven length
    frames = figure(50, 0.4)[:, :HEIGHT - 1, :WIDTH - 1].astype(np.uint8) * 255
    for name, scale, interpolation in [("a.mp4", 1, "nearest"), ("b.mp4", 3, "nearest"),
                                       ("c.mp4", 2, "bilinear"), ("d.gif", 2, "nearest")]:
        contents = []
        for background in (False, True):
            path = tmp_path / f"{background}-{name}"
            with VideoWriter(path, FPS, HEIGHT - 1, WIDTH - 1, scale, interpolation,
                             background=background, queue_chunks=1) as writer:
                for first in range(0, 50, 16):
                    writer.write(frames[first:first + 16])
            assert writer.frames_written == 50
            contents.append(path.read_bytes())
        assert contents[0] == contents[1], name
        if interpolation == "nearest":
            # what comes back is the upscaled input, black padding to even sizes for H.264
            decoded, _ = read_video(tmp_path / f"True-{name}")
            expected = upscale(frames, scale) > 127
            height, width = expected.shape[1:]
            assert np.array_equal(decoded[:, :height, :width] > 127, expected)
            assert decoded[:, height:].max(initial=0) < 40 and decoded[:, :, width:].max(initial=0) < 40


@pytest.mark.parametrize("failing_chunk, chunks", [(0, 1), (2, 20)])  # raised at exit / by write
def test_writer_thread_errors_reach_the_caller_and_leave_no_file(tmp_path, failing_chunk, chunks):
    writer = VideoWriter(tmp_path / "dance.mp4", FPS, HEIGHT, WIDTH, background=True)
    written = []

    def fail_on_chunk(frames):
        if len(written) == failing_chunk:
            raise OSError("disk full")
        written.append(len(frames))

    writer._write_now = fail_on_chunk  # the writer thread calls this for every chunk
    with pytest.raises(OSError, match="disk full"):
        with writer:
            for _ in range(chunks):  # more chunks than the queue holds: must not block forever
                writer.write(np.zeros((4, HEIGHT, WIDTH), np.uint8))
    assert written == [4] * failing_chunk and os.listdir(tmp_path) == []


def test_written_video_holds_the_generated_frames(run, tmp_path):
    import torch

    dancer = dancenet.load(run)
    threads = torch.get_num_threads()
    dancer.write(tmp_path / "dance.mp4", seconds=3, seed=5, scale=2)
    assert torch.get_num_threads() == threads  # the decode thread count is restored
    decoded, _ = read_video(tmp_path / "dance.mp4")
    expected = upscale(dancer.generate(seconds=3, seed=5), 2)
    assert np.array_equal(decoded > 127, expected > 127)


def test_bundle_tool_packs_a_run_that_generates(run, tmp_path):
    import subprocess
    import sys

    from safetensors.torch import load_file

    tool = os.path.join(os.path.dirname(__file__), "..", "tools", "bundle.py")
    out = tmp_path / "bundled"
    done = subprocess.run([sys.executable, tool, str(run), "--out", str(out), "--prime-seconds", "0.5"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "vae.safetensors").read_bytes() == (run / "vae.safetensors").read_bytes()
    original, packed = load_file(str(run / "motion.safetensors")), load_file(str(out / "motion.safetensors"))
    assert sorted(original) == sorted(packed)
    for key, value in packed.items():
        assert value.dtype == torch.float16 and torch.allclose(value.float(), original[key], atol=1e-2)
    prime = np.load(out / "prime.npz")
    assert (prime["clip_stops"] - prime["clip_starts"]).max() == 15  # 0.5 s at 30 fps
    # the copy guard's training frames, as the run's own, and the bundle uses them
    with np.load(out / "motion.library.npz") as made, np.load(run / "motion.library.npz") as kept:
        for key in ("counts", "vae_hash", "dataset_hash", "held_out", "clips"):
            np.testing.assert_array_equal(made[key], kept[key])
    np.testing.assert_array_equal(dancenet.load(out).copies.features, dancenet.load(run).copies.features)
    assert generate(out, tmp_path / "out.mp4", "--seconds", "1", "--prime", "take1") == 0
    frames, _ = read_video(tmp_path / "out.mp4")
    assert len(frames) == 30

    missing = subprocess.run([sys.executable, tool, str(tmp_path / "nowhere"), "--out", str(out)],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "is missing" in missing.stderr
