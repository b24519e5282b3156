"""Configs as frozen dataclasses, and the one YAML recipe shape both training stages read.

A model config (``VAEConfig``, ``MotionConfig``) is exactly what the model's constructor takes;
a training config (``VAETraining``, ``MotionTraining``) is how it is trained. Each dataclass's
field defaults ARE the ``default`` preset; the ``dancenet-2018`` preset is a short list of
overrides beside it. A recipe (``configs/*.yaml``) has one shape for both stages::

    preset: default          # which preset the values below start from
    model:    {...}          # fields of the model config
    training: {...}          # fields of the training config

Unknown or mistyped keys are errors that name the file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import DancenetError, input_error

RECIPE_SECTIONS = ("preset", "model", "training")


def check_all(checks: list[tuple[bool, str]], label: str) -> None:
    """Raise a user error for the first failed ``(ok, message)`` check of a config."""
    for ok, message in checks:
        if not ok:
            raise DancenetError(f"{label}: {message}")


def _type_ok(value, annotation) -> bool:
    """Whether a YAML/JSON value fits a dataclass field annotation (str form, as with
    ``from __future__ import annotations``). ints pass for floats; lists pass for tuples."""
    names = {part.strip() for part in str(annotation).replace("|", ",").split(",")}
    names = {name.split("[")[0] for name in names}
    if value is None:
        return "None" in names
    if isinstance(value, bool):
        return "bool" in names
    checks = {"int": lambda v: isinstance(v, int), "float": lambda v: isinstance(v, (int, float)),
              "str": lambda v: isinstance(v, str), "tuple": lambda v: isinstance(v, (list, tuple)),
              "list": lambda v: isinstance(v, (list, tuple))}
    return any(checks.get(name, lambda v: False)(value) for name in names)


def config_from_dict(cls, values, label: str):
    """Build the frozen dataclass ``cls`` from a mapping; unknown keys and values of the wrong
    type are user errors naming ``label`` (a file, or a file and section) and the key."""
    if not isinstance(values, dict):
        raise DancenetError(f"{label}: expected a mapping of settings, got {type(values).__name__}")
    known = {field.name: field for field in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise DancenetError(f"{label}: unknown key {', '.join(map(str, unknown))} "
                            f"(known: {', '.join(known)})")
    for key, value in values.items():
        if not _type_ok(value, known[key].type):
            raise DancenetError(f"{label}: {key}: {value!r} is not a valid {known[key].type}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
    try:
        return cls(**values)
    except DancenetError as error:  # a value out of range: say where it came from
        where, _, section = label.rpartition(": ")
        prefix = where if where and str(error).startswith(f"{section}:") else label
        raise DancenetError(f"{prefix}: {error}") from None


def preset_of(cls, presets: dict[str, dict], name: str, **values):
    """The preset ``name`` of ``cls`` (its field defaults plus the preset's overrides), then
    ``values`` on top (None values skipped)."""
    if name not in presets:
        raise DancenetError(f"--preset {name}: choose one of {', '.join(presets)}")
    merged = {**presets[name], **{key: value for key, value in values.items() if value is not None}}
    return config_from_dict(cls, merged, f"preset {name}")


@dataclass(frozen=True)
class Recipe:
    """A parsed ``configs/*.yaml``: the preset and the two sections' raw mappings."""

    preset: str
    model: dict
    training: dict
    path: str


def read_recipe(path: str | os.PathLike, presets) -> Recipe:
    """Read a YAML recipe of the shape above; every problem is an error naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise input_error(path, "no such recipe file")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise input_error(path, f"is not a readable YAML recipe ({first})") from None
    if not isinstance(document, dict):
        raise input_error(path, "must be a mapping with preset, model and training (see configs/)")
    unknown = [str(key) for key in document if key not in RECIPE_SECTIONS]
    if unknown:
        raise input_error(path, f"unknown key {', '.join(unknown)}; a recipe has "
                                f"{', '.join(RECIPE_SECTIONS)} (see configs/)")
    preset = document.get("preset", "default")
    if preset not in presets:
        raise input_error(path, f"preset: {preset!r} is not one of {', '.join(presets)}")
    sections = {}
    for section in ("model", "training"):
        value = document.get(section) or {}
        if not isinstance(value, dict):
            raise input_error(path, f"{section}: must be a mapping of settings")
        sections[section] = value
    return Recipe(preset, sections["model"], sections["training"], str(path))


def load_recipe(path: str | os.PathLike, model_cls, model_presets: dict, training_cls,
                training_presets: dict):
    """A recipe file -> (model config, training config): each preset's values, then the file's
    sections on top. Sizes the data decides (frame size, latent size) are set by the caller."""
    recipe = read_recipe(path, model_presets)
    model = config_from_dict(model_cls, {**model_presets[recipe.preset], **recipe.model},
                             f"{path}: model")
    training = config_from_dict(training_cls, {**training_presets[recipe.preset], **recipe.training},
                                f"{path}: training")
    return model, training


def with_overrides(config, label: str, **values):
    """``config`` with the non-None ``values`` replaced, validated as a recipe would be."""
    values = {key: value for key, value in values.items() if value is not None}
    if not values:
        return config
    return config_from_dict(type(config), {**_as_dict(config), **values}, label)


def _as_dict(config) -> dict:
    return {field.name: getattr(config, field.name) for field in fields(config)}


def to_dict(config) -> dict:
    """A config as plain JSON/YAML values (tuples become lists)."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in _as_dict(config).items()}


__all__ = ["Recipe", "check_all", "config_from_dict", "load_recipe", "preset_of", "read_recipe", "to_dict",
           "with_overrides"]
