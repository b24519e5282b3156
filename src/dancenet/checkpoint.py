"""Save and load checkpoints and model files: atomic, versioned, never pickled objects.

Two kinds of file:

- a training checkpoint (``*.pt``): a plain dict of tensors, numbers, strings, lists and dicts,
  loadable with ``torch.load(weights_only=True)``; it carries model, optimiser, scheduler and RNG
  state so training resumes exactly;
- a model (``NAME.safetensors`` + ``NAME.json``): the plain module's weights and the config that
  rebuilds it, what generation and the bundled pretrained model use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .atomic import atomic_file
from .errors import input_error

CHECKPOINT_VERSION = 1


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
    if not isinstance(payload, dict) or payload.get("format_version") != CHECKPOINT_VERSION:
        raise input_error(path, "is not a dancenet checkpoint of a version this dancenet reads")
    return payload


def save_model(directory: str | os.PathLike, name: str, state_dict: dict[str, torch.Tensor],
               config: dict) -> None:
    """Write ``NAME.safetensors`` (weights) and ``NAME.json`` (config) atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state_dict.items()}
    with atomic_file(directory / f"{name}.safetensors") as temporary:
        save_file(tensors, str(temporary), metadata={"format_version": str(CHECKPOINT_VERSION)})
    with atomic_file(directory / f"{name}.json") as temporary:
        temporary.write_text(json.dumps({"format_version": CHECKPOINT_VERSION, **config}, indent=2)
                             + "\n")


def load_model(directory: str | os.PathLike, name: str,
               map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read ``NAME.safetensors`` and ``NAME.json``; returns (state_dict, config)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    weights, config_path = directory / f"{name}.safetensors", directory / f"{name}.json"
    for path in (weights, config_path):
        if not path.is_file():
            raise input_error(path, "is missing")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise input_error(config_path, f"is not valid JSON ({error.msg})") from None
    if config.get("format_version") != CHECKPOINT_VERSION:
        raise input_error(config_path, "was written by an incompatible dancenet version")
    try:
        state_dict = load_file(str(weights), device=str(map_location))
    except Exception as error:
        raise input_error(weights, f"is corrupt or truncated ({type(error).__name__})") from None
    return state_dict, config
