"""Generate dance: roll the motion model out step by step, decode latents to silhouettes, stream.

The recurrent state is carried across the whole video. Latents are sampled in chunks of up to
``DECODE_CHUNK`` steps, each chunk is decoded as one batch (with 2 torch threads on a busy
2-core machine, 256-frame batches decoded 630 frames/s against 330 for 64; the same bits),
binarised at 0.5 (white dancer on black, uint8 0/255) and handed on in pieces of ``CHUNK``
frames, so memory stays flat however long the video is. When writing a file, a writer thread
converts and encodes one chunk while the next is sampled and decoded. All randomness comes
from one ``torch.Generator`` seeded with ``seed``: the same seed gives the same frames.

Priming (``prime="CLIP:FRAME"``): the model first reads the real latents of up to
``PRIME_SECONDS`` of CLIP ending at FRAME (0-based, inclusive), then continues from there; the
video holds only the generated continuation. Latents come from ``RUN/latents.npz`` or, for a run
without one (the bundled model), ``prime.npz``: the same keys as ``latents.npz`` (``mean``,
``clip_names``, ``clip_starts``, ``clip_stops``, ``fps``, ``vae_hash``) holding the first
``seconds`` of every clip as float16 (see :mod:`dancenet.latents`).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .copies import FACTOR as COPY_FACTOR
from .errors import DancenetError, input_error
from .latents import LATENTS_FILE, PRIME_FILE, load_latents
from .runtime import torch_threads

CHUNK = 64
DECODE_CHUNK = 256
PRIME_SECONDS = 2.0
# Whole-body sampling (docs/motion.md, "Whole-body sampling"): a step whose decoded frame puts
# more than BROKEN_SHARE of its foreground outside the main body (evaluate's artifact measure) is
# drawn again, up to RETRIES times, and the least broken draw is kept. A frame under it is whole,
# and the video drops its specks (Dancer.shown).
RETRIES = 7
# Redraw k of R draws at (1 + REDRAW_WIDEN k / R) times the spread, and with correlated noise at
# (1 - k / R) of its correlation (next_step): where the model is sure of its next pose (a pose of
# its footage, say) draws at the same spread land on it again and again. At 1 (the last redraw at
# twice the spread) every draw of some steps still copied the footage; at 2, with the copy guard
# also on the footage as filmed, the bundle copied no frame in 5 x 60 s and 2 in 10 x 60 s
# (docs/motion.md, "The footage as filmed").
REDRAW_WIDEN = 2.0
# Where all of them fail, a step is drawn again as many times more, escape k of R at (1 +
# REDRAW_WIDEN)(1 + ESCAPE_WIDEN k / R) times the spread, from fresh noise: up to 6x. On the bundle
# (10 x 60 s) the steps whose kept draw still failed fell from 63 to 14 in 18,000; escapes at
# narrower spreads left 73 (docs/motion.md, "The pose guard, and escapes").
ESCAPE_WIDEN = 1.0
# How much of each step's draw that chooses the mixture component carries into the next
# (CorrelatedNoise's component_correlation), unless a model says: a component drawn afresh at every
# step makes a dancer trained on little footage flicker, and 0.6 calms her; motion training now
# recommends one per model (its final check). But the bundle's dances to music landed on fewer
# beats at 0.6 (benchmarks/music.py), so a dance to music draws at this one unless a caller sets
# another (docs/music.md, "Limits").
COMPONENT_CORRELATION = 0.0
MAX_RETRIES = 100
BROKEN_SHARE = 0.02
# A centred VAE's place dimension (its last) glides: each draw's place is moved this share of the
# way from the last kept frame's place to where the model put it, before the draw is checked and
# read back (an exponential moving average, about the noise of a 5-frame mean). The real
# dancer's place moves 0.4 px a frame on salsa; drawn freely it jittered (docs/vae.md).
PLACE_GLIDE = 1 / 3
MAX_PIECES = 16  # a frame in more pieces is broken (scored 1)
REDRAW_GRACE = 30  # redrawn rows a rollout may take before the budget of one per step applies
# The repeat guard (docs/motion.md, "Whole-body sampling"): a draw whose frame would make the
# last REPEAT_SECONDS of steps nearly repeat an earlier stretch of the dance (evaluate's loop
# measure) is drawn again too; repeats are looked for in the last REPEAT_MEMORY_SECONDS.
REPEAT_SECONDS = 1.0
REPEAT_MEMORY_SECONDS = 60.0
REPEAT_FACTOR = COPY_FACTOR  # evaluate's loop measure compares frames at 1/4 resolution, as the copy guard


BUNDLED_DIRECTORY = Path(__file__).parent / "pretrained" / "salsa"


def bundled_directory() -> Path:
    """The pretrained salsa model shipped inside the package; a user error when absent."""
    directory = BUNDLED_DIRECTORY
    if not (directory / "motion.json").is_file() or not (directory / "vae.json").is_file():
        raise DancenetError("no bundled model shipped in this install; give a RUN directory "
                            "(make one with `dancenet train vae`, `encode`, `train motion`)")
    return directory


def check_options(seconds: float, temperature: float, sigma_temperature: float) -> None:
    """User errors for impossible generation options."""
    from .limits import check_seconds

    check_seconds(seconds, "--seconds")  # streamed, so memory is flat; the cap bounds the time
    if not (math.isfinite(temperature) and temperature > 0):
        raise DancenetError(f"--temperature {temperature}: must be > 0")
    if not (math.isfinite(sigma_temperature) and sigma_temperature > 0):
        raise DancenetError(f"--sigma-temperature {sigma_temperature}: must be > 0")


def check_retries(value: int) -> None:
    """A user error unless 0 <= value <= MAX_RETRIES."""
    if not 0 <= value <= MAX_RETRIES:
        raise DancenetError(f"--retries {value}: must be a whole number from 0 to {MAX_RETRIES}")


def check_correlation(value: float, flag: str = "--noise-correlation") -> None:
    """A user error naming ``flag`` unless 0 <= value < 1 (1 would never draw anything new)."""
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise DancenetError(f"{flag} {value}: must be at least 0 and below 1")


def parse_prime(text: str) -> tuple[str, int | None]:
    """``"CLIP"`` or ``"CLIP:FRAME"`` -> (clip name, frame or None)."""
    name, colon, frame = text.rpartition(":")
    if colon and frame.isdigit() and name:
        return name, int(frame)
    return text, None


@contextlib.contextmanager
def single_step_kernels():
    """Settings for batch-1 recurrent steps, restored afterwards (never held across a ``yield``,
    so the VAE's batched convolutions in between keep their own).

    oneDNN's LSTM repacks its weights on every call: one step of a 2x512 LSTM took 1.4 ms with it,
    0.24 ms without. One intra-op thread: splitting microsecond-sized ops across threads cost
    10x (40 vs 400 steps/s) on a busy 2-core machine.
    """
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flags() warns about TF32 on Intel GPUs; irrelevant
        with torch.backends.mkldnn.flags(enabled=False):
            yield


@contextlib.contextmanager
def threads_beside_writer():
    """Torch intra-op threads while a video writer thread encodes beside us: one core fewer.

    On a busy 2-core machine, decoding with 2 threads next to the writer ran at 630 frames/s
    against 850 with 1 (threads spin waiting for each other); results are the same bits.
    """
    with torch_threads(torch.get_num_threads() - 1):
        yield


@torch.no_grad()
def rollout(model, scaler, context: torch.Tensor, frames: int, generator: torch.Generator,
            temperature: float = 1.0, sigma_temperature: float = 1.0,
            chunk: int = CHUNK, noise_correlation: float = 0.0,
            broken: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
            retries: int = 0, component_correlation: float = 0.0,
            glide: bool = False) -> Iterator[torch.Tensor]:
    """Sample ``frames`` latents after reading ``context`` -> chunks of raw latents (n, L).

    model: a :class:`~dancenet.motion.model.MotionModel` in eval mode; scaler: its LatentScaler.
    context: (frames, L) raw latents the model reads first (its last row is the frame before the
    first generated one). The state is carried through the whole rollout. ``sigma_temperature``
    is ignored by the dancenet-2018 sampler, which has one temperature for both (as the original),
    and so is ``noise_correlation`` (how much of each step's noise carries into the next:
    :class:`~dancenet.motion.mdn.CorrelatedNoise`; 0 = independent draws), and
    ``component_correlation`` (the same for the draws that choose the mixture component). ``broken``: a
    :class:`DrawCheck` (or any ``broken`` of :func:`next_step`); with it, a step that scores
    above ``BROKEN_SHARE`` is drawn again up to ``retries`` times. ``glide``: the latents are a
    centred VAE's, whose place glides from the frame before (:func:`draw`).
    """
    from .motion.mdn import CorrelatedNoise, MixtureParameters

    config = model.config
    params, state = model(scaler.normalise(context)[None], None)
    params = MixtureParameters(*(value[:, -1] for value in params))
    noise = CorrelatedNoise(noise_correlation, component_correlation) \
        if noise_correlation or component_correlation else None
    done, previous = 0, context[-1:]
    while done < frames:
        count = min(chunk, frames - done)
        block = torch.empty(count, config.latent_size, device=context.device)
        with single_step_kernels():
            for index in range(count):
                raw, params, state = next_step(model, scaler, params, state, generator, temperature,
                                               sigma_temperature, noise, broken, retries,
                                               previous[:, -1] if glide else None)
                block[index], previous = raw[0], raw
        done += count
        yield block


def interpolate(steps: Iterator[torch.Tensor], previous: torch.Tensor, stride: int,
                frames: int) -> Iterator[torch.Tensor]:
    """Chunks of latents ``stride`` frames apart -> chunks of every frame, ``frames`` in all.

    ``previous`` (L,) is the frame before the first step. Frame ``stride * i + j`` (j = 1..stride)
    lies ``j / stride`` of the way from step ``i - 1`` (``previous`` for the first) to step ``i``,
    so every ``stride``-th frame is a step itself.
    """
    done = 0
    weights = torch.arange(1, stride + 1, dtype=previous.dtype, device=previous.device) / stride
    for block in steps:
        starts = torch.cat([previous[None], block[:-1]])
        filled = starts[:, None] + (block - starts)[:, None] * weights[None, :, None]
        filled[:, -1] = block  # each step exactly (its whole-body frame is reused by these bits)
        filled = filled.reshape(-1, block.shape[1])[:frames - done]
        done += len(filled)
        previous = block[-1]
        yield filled
        if done >= frames:
            return


def draw(model, scaler, params, generator: torch.Generator, temperature: float, sigma_temperature,
         noise=None, place: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the next latents from ``params`` -> (raw latents (batch, L), what the model reads
    back). ``place`` (batch,): the last kept frame's place, for a centred VAE's latents, whose
    last dimension then glides from it (``PLACE_GLIDE``)."""
    from .motion.mdn import sample, sample_2018

    config = model.config
    if config.sampler == "2018":
        value = sample_2018(params, generator, temperature)
    else:
        value = sample(params, generator, temperature, sigma_temperature, noise)
    raw = scaler.denormalise(value)
    if place is not None:
        raw = torch.cat([raw[:, :-1], (place + PLACE_GLIDE * (raw[:, -1] - place))[:, None]], dim=1)
        value = scaler.normalise(raw)
    # The 2018 generator fed its outputs back unscaled into a net trained on scaled inputs; kept
    # on purpose for the baseline.
    return raw, raw if config.feedback == "2018-unscaled" else value


def next_step(model, scaler, params, state, generator: torch.Generator, temperature: float,
              sigma_temperature, noise=None,
              broken: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              retries: int = 0, place: torch.Tensor | None = None):
    """One rollout step: sample from ``params``, feed it back -> (raw latents (batch, L), the next
    mixture, the next state). ``sigma_temperature``: a float, or a (batch, 1) tensor of spreads;
    ``noise``: the rollout's :class:`~dancenet.motion.mdn.CorrelatedNoise`, or None; ``place``:
    see :func:`draw` (every draw and redraw glides from it).

    ``broken``: (raw latents (n, L), the batch rows (n,) they were drawn for) -> (n,) how broken
    each draw is (a :class:`DrawCheck`: the share of its frame outside the main body, or more
    when it repeats the dance). A row above ``BROKEN_SHARE`` is drawn again from its mixture, up
    to ``retries`` times (a redraw draws every row and keeps the new draw only for rows it
    improves); each row keeps its least broken draw, and only that reaches the state and the
    noise. Redraw ``k`` of ``retries`` draws at ``1 + REDRAW_WIDEN k / retries`` times the spread
    and, with correlated ``noise``, continues from the last kept draw's noise at ``1 - k /
    retries`` of its correlation (:class:`CorrelatedNoise`'s ``loosen``): the first redraws stay
    near the dance's course, the last ones leave it, so a draw that copies a training frame or
    repeats the dance can get away from the pose the model and its noise were carrying it to.
    Where all ``retries`` fail, it escapes: up to ``retries`` draws more, wider still, from fresh
    noise (:func:`redraw_schedule`).
    """
    previous = noise.state if noise is not None else None
    raw, feedback = draw(model, scaler, params, generator, temperature, sigma_temperature, noise, place)
    if broken is not None and retries > 0:
        shares = torch.as_tensor(broken(raw, torch.arange(len(raw))), dtype=torch.float64).reshape(-1)
        kept = noise.state if noise is not None else None
        for widen, loosen in redraw_schedule(retries):
            bad = shares > BROKEN_SHARE
            if not bad.any():
                break
            if noise is not None:
                noise.state = previous  # a redraw continues from the last kept draw's noise
            with noise.loosened(loosen) if noise is not None else contextlib.nullcontext():
                again, again_feedback = draw(model, scaler, params, generator, temperature,
                                             sigma_temperature * widen, noise, place)
            new_shares = torch.full_like(shares, math.inf)
            new_shares[bad] = torch.as_tensor(broken(again[bad], bad.nonzero()[:, 0]),
                                              dtype=torch.float64).reshape(-1)
            better = new_shares < shares
            shares = torch.where(better, new_shares, shares)
            rows = better.to(raw.device)[:, None]
            raw, feedback = torch.where(rows, again, raw), torch.where(rows, again_feedback, feedback)
            if noise is not None:
                kept = noise.choose(rows, noise.state, kept)
        if noise is not None:
            noise.state = kept
        keep = getattr(broken, "keep", None)
        if keep is not None:
            keep(raw)
    params, state = model.step(feedback, state)
    return raw, params, state


def redraw_schedule(retries: int) -> list[tuple[float, float]]:
    """(spread factor, noise loosening) of each redraw of a step, in order: redraw k of
    ``retries`` at ``1 + REDRAW_WIDEN k / retries`` times the spread, its noise tied to the last
    kept draw's at ``1 - k / retries`` of the correlation; then, where every one of those failed,
    ``retries`` escapes, escape k at ``(1 + REDRAW_WIDEN)(1 + ESCAPE_WIDEN k / retries)`` times
    the spread from fresh noise."""
    redraws = [(1.0 + REDRAW_WIDEN * attempt / retries, attempt / retries) for attempt in range(1, retries + 1)]
    escapes = [((1.0 + REDRAW_WIDEN) * (1.0 + ESCAPE_WIDEN * attempt / retries), 1.0)
               for attempt in range(1, retries + 1)]
    return redraws + escapes


def start_context(starts: torch.Tensor, generator: torch.Generator, count: int = 1) -> torch.Tensor:
    """Where unprimed rollouts start: ``count`` rows of ``starts`` (k, L), the first frames of the
    training clips, picked by ``generator`` -> (count, L). Motion training's rollout checks start
    their dances the same way."""
    choice = torch.randint(len(starts), (count,), generator=generator, device=generator.device)
    return starts[choice.to(starts.device)]


def broken_share(frame: np.ndarray) -> float:
    """A decoded frame (H, W) -> the share of its foreground outside the main body (``evaluate``'s
    artifact measure: pieces that came off the dancer), 1 for an empty frame (no dancer at all)
    and for one in more than ``MAX_PIECES`` pieces."""
    from scipy import ndimage

    from .evaluate.metrics import EMPTY_SHARE, artifact_analysis

    foreground = np.count_nonzero(frame)
    if foreground < EMPTY_SHARE * frame.size:
        return 1.0
    pieces = ndimage.label(frame, structure=np.ones((3, 3)))[1]
    if pieces <= 1:
        return 0.0  # one piece: nothing came off (10x cheaper than the analysis)
    if pieces > MAX_PIECES:
        return 1.0  # noise, not a body (an untrained VAE's frames): the analysis would take long
    return artifact_analysis(frame[None]).ratio


class Repeats:
    """The kept steps of a rollout, row by row, to tell how closely a new frame would make the
    last ``window`` steps repeat an earlier stretch of the same row within its last ``memory``
    steps. This is ``evaluate``'s loop measure (the mean soft IoU of time-aligned frames at
    1/``REPEAT_FACTOR`` resolution, against stretches that start more than a window earlier),
    taken on the steps alone: for each step it keeps the frame's descriptor and its similarity
    with every remembered step (by lag), so scoring a draw costs one row of similarities."""

    @classmethod
    def for_rate(cls, rows: int, steps_per_second: float) -> "Repeats":
        """A guard of ``REPEAT_SECONDS`` windows and ``REPEAT_MEMORY_SECONDS`` of memory for a
        rollout of ``rows`` dances stepping ``steps_per_second`` times a second."""
        return cls(rows, round(REPEAT_SECONDS * steps_per_second),
                   round(REPEAT_MEMORY_SECONDS * steps_per_second))

    def __init__(self, rows: int, window: int, memory: int):
        from .evaluate.metrics import LOOP_THRESHOLD

        self.window, self.threshold = max(2, window), LOOP_THRESHOLD
        self.memory = max(memory, 2 * self.window + 1)
        # each row's remembered step descriptors, a ring of ``memory`` (allocated on first use)
        self.store: list[np.ndarray | None] = [None] * rows
        self.norms: list[np.ndarray | None] = [None] * rows  # their squared norms
        self.count = [0] * rows  # steps each row has kept
        # the lag similarities of each row's last window - 1 kept steps (lag 1 first)
        self.similar = [collections.deque(maxlen=self.window - 1) for _ in range(rows)]

    @staticmethod
    def describe(frame: np.ndarray) -> np.ndarray:
        """A frame (H, W) -> its flat descriptor at 1/``REPEAT_FACTOR`` resolution."""
        from .evaluate.metrics import downsample

        return downsample(frame[None], REPEAT_FACTOR).reshape(-1)

    def lags(self, row: int, descriptor: np.ndarray) -> np.ndarray:
        """Soft IoU of a descriptor with the row's remembered steps, the newest first (lag 1)."""
        from .evaluate.metrics import soft_iou_matrix

        count, store = self.count[row], self.store[row]
        if not count:
            return np.zeros(0, dtype=np.float32)
        filled = min(count, self.memory)
        similarity = soft_iou_matrix(descriptor[None], store[:filled], self.norms[row][:filled])[0]
        return similarity[(count - 1 - np.arange(filled)) % self.memory]  # newest first

    def similarity(self, row: int, lags: np.ndarray) -> float:
        """How closely the row's last ``window`` steps, ending with a frame of these ``lags``,
        repeat an earlier stretch: the best mean similarity over lags above ``window`` (0 until
        there is such a stretch)."""
        recent = self.similar[row]
        if len(recent) < self.window - 1:
            return 0.0
        # the oldest step of the window remembers the fewest steps, which bounds the lag
        top = min(len(lags), len(recent[0]))
        if top <= self.window:
            return 0.0
        total = lags[self.window:top].copy()
        for earlier in recent:
            total += earlier[self.window:top]
        return float(total.max() / self.window)

    def add(self, row: int, descriptor: np.ndarray, lags: np.ndarray) -> None:
        """Remember a kept step of ``row`` (its descriptor and its :meth:`lags`)."""
        if self.store[row] is None:
            self.store[row] = np.empty((self.memory, len(descriptor)), dtype=np.float32)
            self.norms[row] = np.empty(self.memory, dtype=np.float32)
        slot = self.count[row] % self.memory
        self.store[row][slot], self.norms[row][slot] = descriptor, np.dot(descriptor, descriptor)
        self.count[row] += 1
        self.similar[row].append(lags)


def _guarded(fault: float, similarity: float, threshold: float) -> float:
    """A draw's fault once a guard found it ``similarity`` close to what it must not repeat: above
    ``BROKEN_SHARE`` from ``threshold`` on, the more the closer, so the least close is kept."""
    if similarity < threshold:
        return fault
    return max(fault, BROKEN_SHARE + 1e-6 + similarity - threshold)


class DrawCheck:
    """Scores the draws of one rollout for whole-body sampling (``broken`` of :func:`next_step`,
    which calls :meth:`keep` at the end of each step): ``decode`` (raw latents (n, L) -> frames
    (n, H, W)) each draw and score it by :func:`broken_share`; with ``repeats`` (a
    :class:`Repeats` of the rollout's rows), a draw that would repeat an earlier stretch of its
    dance scores above ``BROKEN_SHARE`` too, the more so the closer the repeat, so it is drawn
    again and a broken limb still counts against a repeat; with ``copies`` (a
    :class:`~dancenet.copies.Copies` of the training frames), so does a draw whose frame copies a
    training frame (the copy guard) and one whose shape is unlike any of theirs (the pose guard:
    a body melted or doubled), the more so the further from their floor.

    Within a budget: beyond ``REDRAW_GRACE`` redrawn rows, a rollout redraws at most as many rows
    as it has taken steps, so a model whose frames mostly come apart (an undertrained one) checks
    at most about twice as many frames as it dances instead of ``2 retries + 1`` times as many. A
    redraw over budget scores infinite (never kept) without being decoded."""

    def __init__(self, decode: Callable[[torch.Tensor], np.ndarray], repeats: Repeats | None = None,
                 copies=None):
        self.decode, self.repeats, self.copies = decode, repeats, copies
        self.first, self.steps, self.redraws = True, 0, 0
        self.pending = {}  # (row, latents' bytes) -> (frame, descriptor, lags) of this step's draws

    def __call__(self, latents: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        count = len(latents)
        if self.first:
            self.first, self.steps = False, self.steps + count
        elif self.redraws + count > self.steps + REDRAW_GRACE:
            return torch.full((count,), math.inf, dtype=torch.float64)
        else:
            self.redraws += count
        return self.score(latents, rows)

    def score(self, latents: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Decode and score draws (see the class), remembering what :meth:`keep` needs."""
        frames, scores = self.decode(latents), []
        for frame, row, values in zip(frames, rows.tolist(), latents.cpu().numpy()):
            fault, descriptor, lags = broken_share(frame), None, None
            if self.repeats is not None or self.copies is not None:
                descriptor = Repeats.describe(frame)
            if self.repeats is not None:
                lags = self.repeats.lags(row, descriptor)
                fault = _guarded(fault, self.repeats.similarity(row, lags), self.repeats.threshold)
            if self.copies is not None:
                fault = _guarded(fault, self.copies.closest(descriptor), self.copies.threshold)
                pose = self.copies.pose(descriptor)  # the pose guard: unlike any pose below the floor
                if pose < self.copies.floor:
                    fault = max(fault, BROKEN_SHARE + 1e-6 + self.copies.floor - pose)
            self.pending[row, values.tobytes()] = (frame, descriptor, lags)
            scores.append(fault)
        return torch.tensor(scores, dtype=torch.float64)

    def keep(self, latents: torch.Tensor) -> None:
        """The draws each row kept at this step, (batch, L): remember them."""
        self.first = True
        for row, values in enumerate(latents.cpu().numpy()):
            key = values.tobytes()
            frame, descriptor, lags = self.pending[row, key]
            if self.repeats is not None:
                self.repeats.add(row, descriptor, lags)
            self.kept(key, frame)
        self.pending = {}

    def kept(self, key: bytes, frame: np.ndarray) -> None:
        """A kept draw's frame (``key``: its latents' bytes); for subclasses."""


class WholeBody(DrawCheck):
    """The check of one rollout of :class:`Dancer` (batch 1), with the repeat guard and, when the
    run has training frames to compare with, the copy guard: the kept draw's frame goes into
    ``reuse`` (when given) for the video."""

    def __init__(self, dancer: "Dancer", reuse: dict | None = None):
        super().__init__(dancer.decode, Repeats.for_rate(1, dancer.fps / dancer.motion.config.frame_stride),
                         dancer.copies)
        self.reuse = reuse

    def kept(self, key: bytes, frame: np.ndarray) -> None:
        if self.reuse is not None:
            self.reuse[key] = frame


class Dancer:
    """A VAE and a motion model trained on it, ready to generate (see :func:`load`).

    height, width: frame size; fps: frame rate of the dataset the models learnt from.
    noise_correlation: how much of each rollout step's noise carries into the next
    (:class:`~dancenet.motion.mdn.CorrelatedNoise`): the model's recommendation (``sampling`` in
    motion.json; 0 for models that have none), which a caller may set (``--noise-correlation``).
    component_correlation: the same for the draws that choose the mixture component: the model's
    (``sampling`` in motion.json), else ``COMPONENT_CORRELATION``; ``--component-correlation``
    (ignored by the dancenet-2018 sampler). A dance to music draws at ``COMPONENT_CORRELATION``
    unless a caller set this.
    retries: how many times a step whose frame breaks apart is drawn again (whole-body sampling,
    ``RETRIES``; 0 for the dancenet-2018 preset, which keeps the 2018 sampler); a caller may set it
    (``--retries``). name: the motion model's name in ``directory`` (its training frames, for the
    copy guard, are ``NAME.library.npz``).
    """

    def __init__(self, vae, motion, scaler, metadata: dict, directory: Path,
                 device: torch.device, name: str = "motion"):
        self.vae, self.motion, self.scaler, self.metadata = vae, motion, scaler, metadata
        self.directory, self.device, self.name = directory, device, name
        self._copies: list = []  # the copy guard's training frames, once loaded ([Copies or None])
        self.height, self.width = int(vae.config.height), int(vae.config.width)
        self.fps = float(metadata.get("fps", 30.0))
        self.preset = metadata.get("preset", motion.config.preset)
        self.noise_correlation = float((metadata.get("sampling") or {}).get("noise_correlation", 0.0))
        self._component_correlation = float((metadata.get("sampling") or {}).get("component_correlation",
                                                                                  COMPONENT_CORRELATION))
        self._component_correlation_set = False
        self.retries = 0 if self.preset == "dancenet-2018" else RETRIES

    @property
    def component_correlation(self) -> float:
        return self._component_correlation

    @component_correlation.setter
    def component_correlation(self, value: float) -> None:
        self._component_correlation, self._component_correlation_set = float(value), True

    def component_correlation_for(self, music: bool) -> float:
        """The component correlation a dance draws at: :attr:`component_correlation`, but
        ``COMPONENT_CORRELATION`` for a dance to ``music`` unless a caller set it."""
        return self._component_correlation if self._component_correlation_set or not music \
            else COMPONENT_CORRELATION

    def temperatures(self, temperature: float | None,
                     sigma_temperature: float | None) -> tuple[float, float]:
        """Fill in what the caller left as None with the model's recommended sampling
        temperatures (``sampling`` in motion.json, chosen by measurement for that model), else 1."""
        recommended = self.metadata.get("sampling") or {}
        if temperature is None:
            temperature = float(recommended.get("temperature", 1.0))
        if sigma_temperature is None:
            sigma_temperature = float(recommended.get("sigma_temperature", 1.0))
        return temperature, sigma_temperature

    @property
    def copies(self):
        """The training frames the copy guard keeps dances from replaying (a
        :class:`~dancenet.copies.Copies`), loaded on first use; None for a run with none
        (neither ``NAME.library.npz`` nor ``latents.npz``)."""
        if not self._copies:
            from .copies import load_copies

            self._copies.append(load_copies(self.directory, self.name, self.metadata, self.vae.vae_hash,
                                            self.decode, (self.height, self.width), self.decode_chunk))
        return self._copies[0]

    @copies.setter
    def copies(self, value) -> None:
        """Other training frames to compare with, or None: no copy guard."""
        self._copies[:] = [value]

    def frame_count(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    @property
    def decode_chunk(self) -> int:
        """Frames per decoding batch: ``DECODE_CHUNK``, less where the VAE needs small batches to
        bound memory (the dancenet-2018 VAE keeps 128 full-resolution channels), never below
        ``CHUNK``."""
        return max(CHUNK, min(DECODE_CHUNK, int(self.vae.config.inference_batch_size)))

    # ---------------------------------------------------------------------------- latents

    def prime_latents(self, prime: str) -> torch.Tensor:
        """Real raw latent means (frames, L) of the clip named in ``prime`` ("CLIP[:FRAME]")."""
        path = self.directory / LATENTS_FILE
        if not path.is_file():
            path = self.directory / PRIME_FILE
        if not path.is_file():
            raise input_error(self.directory, "has no latents.npz or prime.npz to prime from; "
                                              "run `dancenet encode` or drop --prime")
        latents = load_latents(path)
        if latents.vae_hash != self.vae.vae_hash:
            raise input_error(path, "was encoded with another VAE than this run's; encode again")
        name, frame = parse_prime(prime)
        if name not in latents.clip_names:
            raise DancenetError(f"--prime {prime}: no clip named {name!r} "
                                f"(clips: {', '.join(latents.clip_names)})")
        start, stop = latents.clip_rows(name)
        context = max(1, round(PRIME_SECONDS * self.fps))
        if frame is None:
            frame = min(stop - start, context) - 1
        if frame >= stop - start:
            raise DancenetError(f"--prime {prime}: frame {frame} is past the end of {name} "
                                f"(frames 0..{stop - start - 1} available in {path.name})")
        first = start + max(0, frame + 1 - context)
        return torch.from_numpy(latents.mean[first:start + frame + 1].astype(np.float32))

    def latents(self, frames: int, seed: int = 0, temperature: float | None = None,
                sigma_temperature: float | None = None, prime: str | None = None,
                chunk: int = CHUNK, reuse: dict | None = None, music: bool = False) -> Iterator[torch.Tensor]:
        """Roll the motion model out for ``frames`` frames -> chunks of raw latents (n, L); a
        model of ``frame_stride`` k steps every k-th frame and the frames between are interpolated.

        Without ``prime`` the seed picks the first frame of one of the training clips. ``reuse``:
        a dict that whole-body sampling fills with the frames it decoded for the kept steps, for
        :meth:`decode_reusing` to take after each chunk. ``music``: the dance will follow a song
        (:meth:`component_correlation_for`).
        """
        temperature, sigma_temperature = self.temperatures(temperature, sigma_temperature)
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        if prime is not None:
            context = self.prime_latents(prime)
        else:
            starts = self.metadata.get("start_latents") or [self.scaler.shift.tolist()]
            context = start_context(torch.tensor(starts, dtype=torch.float32), generator)
        stride = self.motion.config.frame_stride
        # a model of frame_stride k reads every k-th frame, ending at the frame before the dance
        context = context.flip(0)[::stride].flip(0).to(self.device)
        steps = rollout(self.motion, self.scaler, context, -(-frames // stride), generator,
                        temperature, sigma_temperature, max(1, chunk // stride), self.noise_correlation,
                        WholeBody(self, reuse) if self.retries else None, self.retries,
                        self.component_correlation_for(music), self.vae.config.centre)
        return interpolate(steps, context[-1], stride, frames) if stride > 1 else steps

    # ---------------------------------------------------------------------------- frames

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents (n, L) raw -> (n, height, width) uint8 silhouettes, 0 or 255."""
        return (self.vae.silhouettes(latents.to(self.device)).to(torch.uint8) * 255).cpu().numpy()

    @staticmethod
    def shown(frames: np.ndarray) -> np.ndarray:
        """Decoded frames (n, H, W) uint8 -> the frames of the video: each frame that is otherwise
        whole loses its specks, the pieces off its body when they hold at most ``BROKEN_SHARE`` of
        it (what the redraws let through; ``evaluate.metrics.remove_specks``). A frame with more has
        come apart and is shown as it is. The draws are checked before this, as decoded, so a
        dance is the same with or without it but for the specks. The frames between the steps of
        a strided model are not checked, but lose their specks alike."""
        from .evaluate.metrics import remove_specks

        return frames * remove_specks(frames, BROKEN_SHARE)

    def decode_reusing(self, latents: torch.Tensor, reuse: dict) -> np.ndarray:
        """:meth:`decode`, taking the frames that whole-body sampling already decoded for these
        latents from ``reuse`` (see :meth:`latents`), which it empties -> (n, height, width) uint8."""
        keys = [row.tobytes() for row in latents.cpu().numpy()]
        found = [reuse.get(key) for key in keys]
        reuse.clear()
        missing = [index for index, frame in enumerate(found) if frame is None]
        if len(missing) == len(keys):
            return self.decode(latents)
        frames = np.empty((len(keys), self.height, self.width), dtype=np.uint8)
        for index, frame in enumerate(found):
            if frame is not None:
                frames[index] = frame
        if missing:
            frames[missing] = self.decode(latents[missing])
        return frames

    def stream(self, seconds: float | None = None, seed: int = 0, temperature: float | None = None,
               sigma_temperature: float | None = None, prime: str | None = None,
               music=None) -> Iterator[np.ndarray]:
        """Generate frame chunks lazily -> iterator of (n <= CHUNK, height, width) uint8 arrays.

        Temperatures left as None take the model's recommended values (:meth:`temperatures`).
        ``music``: a song's path or :class:`~dancenet.music.Music`; the dance follows its beats
        (docs/music.md) and ``seconds`` (None) defaults to the song's length instead of 60.
        """
        temperature, sigma_temperature = self.temperatures(temperature, sigma_temperature)
        music, seconds = _music_and_seconds(music, seconds)
        check_options(seconds, temperature, sigma_temperature)
        if music is not None:
            from .choreography import stream_to_music

            yield from stream_to_music(self, music.beats, self.frame_count(seconds), seed, temperature,
                                       sigma_temperature, prime, CHUNK)
            return
        reuse = {}
        for block in self.latents(self.frame_count(seconds), seed, temperature, sigma_temperature,
                                  prime, chunk=self.decode_chunk, reuse=reuse):
            frames = self.shown(self.decode_reusing(block, reuse))
            for first in range(0, len(frames), CHUNK):
                yield frames[first:first + CHUNK]

    def generate(self, seconds: float | None = None, seed: int = 0, temperature: float | None = None,
                 sigma_temperature: float | None = None, prime: str | None = None,
                 music=None) -> np.ndarray:
        """The whole video in memory -> (frames, height, width) uint8, 0 or 255.
        ``seconds`` None: 60, or the song's length with ``music`` (see :meth:`stream`)."""
        return np.concatenate(list(self.stream(seconds, seed, temperature, sigma_temperature, prime,
                                               music)))

    def write(self, path: str | os.PathLike, seconds: float | None = None, seed: int = 0,
              temperature: float | None = None, sigma_temperature: float | None = None,
              prime: str | None = None, scale: int = 4, interpolation: str = "nearest",
              quiet: bool = True, music=None) -> Path:
        """Stream a generated video into ``path`` (.mp4, .gif or a folder of PNGs); with
        ``music`` the dance follows the song and an mp4 carries it (AAC; GIF and PNG are silent)."""
        from .progress import progress
        from .video import VideoWriter, check_writable, output_format

        temperature, sigma_temperature = self.temperatures(temperature, sigma_temperature)
        check_options(60.0 if seconds is None else seconds, temperature, sigma_temperature)
        check_writable(path)
        if prime is not None:
            self.prime_latents(prime)  # fail on a bad clip name before opening the output
        music, seconds = _music_and_seconds(music, seconds)
        if music is not None and Path(path).resolve() == music.path.resolve():
            raise input_error(path, "is the song itself; write the video to another name")
        total = self.frame_count(seconds)
        if music is not None:
            from .choreography import native_frame_budget

            total += native_frame_budget(total)  # the plain rollout it re-times comes first
        audio = music.path if music is not None and output_format(path) == "mp4" else None
        with VideoWriter(path, self.fps, self.height, self.width, scale, interpolation, background=True,
                         audio=audio) as writer, threads_beside_writer():
            with progress(total=total, desc="generate", unit="frame", quiet=quiet) as bar:
                if music is None:
                    chunks = self.stream(seconds, seed, temperature, sigma_temperature, prime)
                else:
                    from .choreography import stream_to_music

                    chunks = stream_to_music(self, music.beats, self.frame_count(seconds), seed, temperature,
                                             sigma_temperature, prime, CHUNK, on_native_frames=bar.update)
                for frames in chunks:
                    writer.write(frames)
                    bar.update(len(frames))
        return Path(path)


def _music_and_seconds(music, seconds: float | None):
    """(a loaded :class:`~dancenet.music.Music` or None, the length): ``seconds``, else the
    song's length, else 60."""
    if music is not None:
        from .music import Music, load_music

        if seconds is not None:
            check_options(seconds, 1.0, 1.0)  # a bad --seconds before reading the song
        if not isinstance(music, Music):
            music = load_music(music, seconds)
        if seconds is None:
            seconds = music.duration
    return music, 60.0 if seconds is None else seconds


def load(run: str | os.PathLike | None = None, device: str | torch.device = "cpu",
         motion_name: str = "motion") -> Dancer:
    """Load the VAE and motion model of ``run`` (None = the bundled salsa model)."""
    from .motion.model import load_motion
    from .runtime import resolve_device
    from . import vae as vae_package

    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    directory = bundled_directory() if run is None else Path(run)
    if not directory.is_dir():
        raise input_error(directory, "no such run directory")
    if not (directory / f"{motion_name}.json").is_file():
        raise input_error(directory, f"has no motion model ({motion_name}.json); train one with "
                                     f"`dancenet train motion {directory}`")
    vae = vae_package.load(directory, device)
    motion, scaler, metadata = load_motion(directory, motion_name, device)
    if metadata.get("vae_hash") != vae.vae_hash:
        raise input_error(directory / f"{motion_name}.json",
                          "was trained on latents of another VAE than this run's vae.safetensors; "
                          f"encode again and retrain with `dancenet train motion {directory}`")
    if motion.config.latent_size != vae.config.latent_size:
        raise input_error(directory / f"{motion_name}.json", "latent size differs from the VAE's")
    return Dancer(vae, motion, scaler, metadata, directory, device, motion_name)
