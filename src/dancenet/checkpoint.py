"""Save and load checkpoints and model files: atomic, versioned, never pickled objects.

Two kinds of file:

- a training checkpoint (``*.pt``): a plain dict of tensors, numbers, strings, lists and dicts,
  loadable with ``torch.load(weights_only=True)``; it carries model, optimiser, scheduler and RNG
  state so training resumes exactly;
- a model (``NAME.safetensors`` + ``NAME.json``), in the spirit of diffusers' ``save_pretrained`` /
  ``from_pretrained``: the plain module's weights, and a JSON holding the format marker, version,
  kind, the config that rebuilds the module (constructor arguments only) and metadata. Every model
  (VAE, motion) goes through :func:`save_pretrained` / :func:`load_pretrained`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_file
from .errors import DancenetError, input_error

# 2: the shared training loop's layout (model_config, training, stage, step, epoch, ...)
CHECKPOINT_VERSION = 2


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` (plus the format version) atomically with ``torch.save``."""
    payload = {"format_version": CHECKPOINT_VERSION, **payload}
    with atomic_file(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a training checkpoint safely (``weights_only=True``); bad files raise a user error."""
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise input_error(path, f"is corrupt or truncated ({type(error).__name__}); "
                                "delete it or train again") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise input_error(path, "is not a dancenet checkpoint")
    if payload["format_version"] != CHECKPOINT_VERSION:
        raise input_error(path, f"is a checkpoint of format {payload['format_version']}; this dancenet "
                                f"resumes format {CHECKPOINT_VERSION} only: finish that run with the "
                                "dancenet that started it, or start again with --overwrite")
    return payload


# --------------------------------------------------------------------------------------------
# model files: NAME.safetensors + NAME.json, one format for every model

MODEL_FORMAT = "dancenet-model"
MODEL_VERSION = 2
# version 1 (before the single format): vae.json held the config flat beside fps, dataset_hash and
# val_clips; motion.json held {"format": "dancenet-motion", "config": ..., everything else}.
_V1_VAE_METADATA = ("fps", "dataset_hash", "val_clips")


@dataclass
class ModelFile:
    """A saved model: ``config`` is exactly what its constructor takes, ``metadata`` the rest
    (which data and which VAE it learnt from, its frame rate, training summary, ...)."""

    kind: str                 # "vae" or "motion"
    config: dict
    metadata: dict
    state_dict: dict[str, torch.Tensor] | None = None
    version: int = MODEL_VERSION


def save_pretrained(directory: str | os.PathLike, name: str, kind: str,
                    state_dict: dict[str, torch.Tensor], config: dict, metadata: dict) -> None:
    """Write ``NAME.safetensors`` (weights) and ``NAME.json`` (format, version, kind, config,
    metadata), each atomically. Refuses weights that are not finite: a model file is always usable."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state_dict.items()}
    check_finite_weights(tensors, directory / f"{name}.safetensors")
    document = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "kind": kind,
                "config": config, "metadata": metadata}
    text = json.dumps(document, indent=2) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_file(directory / f"{name}.safetensors") as temporary:
        # one key: safetensors writes its metadata map in a per-process random order, and a
        # model's bytes (its sha256 names it) must not depend on the process that wrote them
        save_file(tensors, str(temporary), metadata={"format": f"{MODEL_FORMAT}/{MODEL_VERSION}"})
    with atomic_file(directory / f"{name}.json") as temporary:
        temporary.write_text(text)


def read_model_info(directory: str | os.PathLike, name: str, kind: str) -> ModelFile:
    """``NAME.json`` alone (no weights): what the model is and where it came from.

    Old (version 1) files are read into the same shape; anything else is a user error naming it.
    """
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise input_error(path, "is missing")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise input_error(path, f"is not valid JSON ({getattr(error, 'msg', error)})") from None
    if not isinstance(document, dict):
        raise input_error(path, "is not a dancenet model file")
    if document.get("format") == MODEL_FORMAT:
        if document.get("version") != MODEL_VERSION:
            raise input_error(path, f"is model format version {document.get('version')}; this "
                                    f"dancenet reads version {MODEL_VERSION} (and 1): upgrade dancenet")
        info = ModelFile(document.get("kind"), document.get("config"), document.get("metadata"))
    elif document.get("format_version") == 1:
        info = _read_version_1(document)
    else:
        raise input_error(path, "is not a dancenet model file (no format marker)")
    if info.kind != kind or not isinstance(info.config, dict) or not isinstance(info.metadata, dict):
        raise input_error(path, f"is not a dancenet {kind} model")
    return info


def _read_version_1(document: dict) -> ModelFile:
    values = {key: value for key, value in document.items() if key != "format_version"}
    if values.pop("format", None) == "dancenet-motion":
        return ModelFile("motion", values.pop("config", None), values, version=1)
    kind = values.pop("kind", None)
    metadata = {key: values.pop(key) for key in _V1_VAE_METADATA if key in values}
    return ModelFile(kind, values, metadata, version=1)


def load_pretrained(directory: str | os.PathLike, name: str, kind: str,
                    map_location: str | torch.device = "cpu") -> ModelFile:
    """Read ``NAME.json`` and ``NAME.safetensors`` -> :class:`ModelFile` with ``state_dict`` set."""
    from safetensors.torch import load_file

    info = read_model_info(directory, name, kind)
    weights = Path(directory) / f"{name}.safetensors"
    if not weights.is_file():
        raise input_error(weights, "is missing")
    try:
        info.state_dict = load_file(str(weights), device=str(map_location))
    except Exception as error:
        raise input_error(weights, f"is corrupt or truncated ({type(error).__name__})") from None
    return info


def check_finite_weights(state_dict: dict[str, torch.Tensor], where: str | os.PathLike) -> None:
    """A user-facing error when any floating-point weight is NaN or infinite (nothing is written)."""
    for key, value in state_dict.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise DancenetError(f"{where}: not written: weight {key} is not finite (training diverged)")
