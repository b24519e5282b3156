"""How motion training cuts latents into examples: clips split whole into training and validation,
one-frame pairs (``dancenet-2018``) or truncated-BPTT windows whose streams carry their state.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DancenetError
from ..latents import Latents


def unquoted_name_hint(value, clip_names) -> str:
    """The end of an error message when ``value`` is a clip name that YAML read as a number:
    unquoted, ``61_07`` is the integer 6107 (underscores group digits) and ``05_01`` the octal
    0o501 = 321; else ""."""
    text = str(value)
    matches = [name for name in clip_names if text.isdigit() and int(text) in _yaml_numbers(name)]
    return f"; write clip names in quotes in a recipe ('{matches[0]}': unquoted, YAML reads it as {text})" \
        if matches else ""


def check_clip_names(names: list[str], clip_names: list[str], label: str) -> None:
    """A user error (naming ``label``, the flag or recipe field) when a name is not a clip's."""
    unknown = [name for name in names if name not in clip_names]
    if unknown:
        raise DancenetError(f"{label}: no clip named {', '.join(unknown)} (clips: {', '.join(clip_names)})"
                            + "".join(unquoted_name_hint(name, clip_names) for name in unknown))


def _yaml_numbers(name: str) -> set[int]:
    """The integers YAML 1.1 may read an unquoted clip name as (decimal, or octal with a leading 0)."""
    digits = name.replace("_", "")
    if not digits.isdigit():
        return set()
    numbers = {int(digits)}
    if len(digits) > 1 and digits.startswith("0") and set(digits) <= set("01234567"):
        numbers.add(int(digits, 8))
    return numbers


def split_clips(latents: Latents, val_clips) -> tuple[list[int], list[int]]:
    """Clip indices (train, validation), split by whole clip.

    val_clips: an int count (taken evenly across the clips), names (a list or "a,b"), "auto"
    (about 15% of the clips, none when there is a single clip) or None / 0.
    """
    count = len(latents.clip_names)
    if val_clips == "auto":
        val_clips = 0 if count < 2 else max(1, round(0.15 * count))
    if isinstance(val_clips, (list, tuple)):
        val_clips = ",".join(str(name) for name in val_clips)
    if isinstance(val_clips, str) and val_clips.isdigit():
        val_clips = int(val_clips)
    if not val_clips:
        return list(range(count)), []
    if isinstance(val_clips, int):
        if val_clips >= count:
            raise DancenetError(f"--val-clips {val_clips}: the latents hold only {count} clips"
                                + unquoted_name_hint(val_clips, latents.clip_names))
        step = count / val_clips
        chosen = {int(step * index + step / 2) for index in range(val_clips)}
    else:
        names = [name.strip() for name in str(val_clips).split(",") if name.strip()]
        check_clip_names(names, latents.clip_names, "--val-clips")
        chosen = {latents.clip_names.index(name) for name in names}
        if len(chosen) == count:
            raise DancenetError("--val-clips: cannot hold out every clip")
    return [i for i in range(count) if i not in chosen], sorted(chosen)


def split_with_test(latents: Latents, val_clips, test_clips: list[str]) -> tuple[list[int], list[int], list[int]]:
    """Clip indices (train, validation, test). Test clips (``test_clips``, names: the clips the
    VAE held out) are never trained on. ``val_clips`` "auto" picks the validation clips, which
    choose the exported epoch, among the other clips when at least ``MIN_CLIPS_FOR_VALIDATION``
    remain (about 10% of them, spread evenly), so selection never sees the test clips; with fewer,
    the test clips validate too (too little data to spare one more clip). Anything else is
    :func:`split_clips`'s ``val_clips``.
    """
    test = sorted(latents.clip_names.index(name) for name in test_clips if name in latents.clip_names)
    rest = [index for index in range(len(latents.clip_names)) if index not in test]
    if isinstance(val_clips, str) and val_clips.isdigit():
        val_clips = int(val_clips)
    if not test or (val_clips != "auto" and not isinstance(val_clips, int)):
        # no test clips, or validation clips named (a resumed run names them; naming a test clip
        # makes it validate too)
        train, validation = split_clips(latents, val_clips)
        train = [i for i in train if i not in test]
    elif len(rest) < MIN_CLIPS_FOR_VALIDATION and val_clips == "auto":
        train, validation = rest, test
    else:  # a count, taken evenly across the clips that are not test clips
        count = max(1, round(0.1 * len(rest))) if val_clips == "auto" else val_clips
        if count >= len(rest):
            raise DancenetError(f"--val-clips {count}: only {len(rest)} clips are not test clips")
        step = len(rest) / count
        validation = sorted({rest[int(step * index + step / 2)] for index in range(count)})
        train = [i for i in rest if i not in validation]
    if not train:
        raise DancenetError("--val-clips / test_clips: no clip is left to train on")
    return train, validation, test


MIN_CLIPS_FOR_VALIDATION = 4


def stride_clips(latents: Latents, stride: int, train: list[int], validation: list[int],
                 test: list[int]) -> tuple[Latents, list[int], list[int], list[int]]:
    """The latents a model of ``frame_stride`` = ``stride`` steps through, with the split mapped.

    Every ``stride``-th frame of each clip, at ``fps / stride``. A training clip gives ``stride``
    clips, one per phase (frames 0, s, 2s...; 1, s+1...; named ``CLIP~1``, ``CLIP~2``... after the
    first, which keeps its name), so no frame is thrown away; a validation or test clip gives its
    first phase only, under its own name. Returns (latents, train, validation, test) indices into
    the new latents. ``stride`` 1 returns everything unchanged.
    """
    if stride == 1:
        return latents, train, validation, test
    rows, names, lengths, kinds = [], [], [], []
    for index, name in enumerate(latents.clip_names):
        kind = "train" if index in train else "validation" if index in validation else \
            "test" if index in test else None
        if kind is None:
            continue
        start, stop = latents.clip_rows(name)
        for phase in range(stride if kind == "train" else 1):
            picked = np.arange(start + phase, stop, stride)
            if len(picked) == 0:
                continue
            rows.append(picked)
            names.append(name if phase == 0 else f"{name}~{phase}")
            lengths.append(len(picked))
            kinds.append(kind)
    rows = np.concatenate(rows)
    strided = Latents(mean=latents.mean[rows], log_var=latents.log_var[rows], clip_names=names,
                      offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                      fps=latents.fps / stride, vae_hash=latents.vae_hash,
                      dataset_hash=latents.dataset_hash)
    split = {wanted: [index for index, kind in enumerate(kinds) if kind == wanted]
             for wanted in ("train", "validation", "test")}
    return strided, split["train"], split["validation"], split["test"]


# --------------------------------------------------------------------------------------------
# Batches


def pair_batches(ranges: list[tuple[int, int]], batch_size: int, generator: torch.Generator):
    """One epoch of (input rows, target rows) for one-frame examples, shuffled -> (batch,) each."""
    inputs = torch.cat([torch.arange(start, stop - 1) for start, stop in ranges if stop - start > 1])
    order = inputs[torch.randperm(len(inputs), generator=generator)]
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        yield rows[:, None], torch.ones(len(rows), dtype=torch.bool)


def stream_batches(ranges: list[tuple[int, int]], batch_size: int, sequence_length: int,
                   generator: torch.Generator):
    """One epoch of truncated-BPTT windows -> (rows (batch, length + 1), reset (batch,)) per step.

    Each of ``batch_size`` streams walks a clip in consecutive windows (the last row of a window
    is the first of the next); ``reset`` marks streams that just started a new clip, whose carried
    state must be zeroed. An epoch covers about as many frames as the training clips hold.
    """
    usable = [(start, stop) for start, stop in ranges if stop - start > sequence_length]
    if not usable:
        raise DancenetError(f"no training clip is longer than sequence_length={sequence_length} "
                            "steps (a step is frame_stride frames); lower it or add longer clips")
    lengths = torch.tensor([stop - start for start, stop in usable], dtype=torch.float)
    total = int(sum(stop - start - 1 for start, stop in ranges))
    steps = max(1, math.ceil(total / (batch_size * sequence_length)))
    positions, stops = [0] * batch_size, [0] * batch_size
    for _ in range(steps):
        reset = torch.zeros(batch_size, dtype=torch.bool)
        windows = []
        for stream in range(batch_size):
            if positions[stream] + sequence_length + 1 > stops[stream]:
                # Longer clips are picked more often, so every frame is about equally likely.
                clip = int(torch.multinomial(lengths, 1, generator=generator))
                start, stop = usable[clip]
                span = stop - start - sequence_length - 1
                offset = int(torch.randint(0, span + 1, (1,), generator=generator))
                positions[stream], stops[stream] = start + offset, stop
                reset[stream] = True
            windows.append(torch.arange(positions[stream], positions[stream] + sequence_length + 1))
            positions[stream] += sequence_length
        yield torch.stack(windows), reset


def reset_state(state, reset: torch.Tensor):
    """Zero the carried state of the streams marked in ``reset`` (batch,); detach the rest."""
    if state is None:
        return None
    keep = (~reset).to(torch.float32)[None, :, None]
    if isinstance(state, tuple):
        return tuple((part * keep.to(part.device)).detach() for part in state)
    return (state * keep.to(state.device)).detach()
