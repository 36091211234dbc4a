"""The target data of a prediction: the sample of validation images, and how each network reads them.

The sample is ``images`` examples of the target data section's validation set (``val_set``), drawn without
replacement by a ``torch.Generator`` seeded with ``seed`` and read in index order; all of them where it holds fewer.
The validation set, not the training set: its preprocessing is the evaluation one (no random crop or mirror), so a
sample is the same images and pixels for every network and every run, and the data module reads it without setting
up its training set. Nothing is trained on it but the linear probe, which holds out part of the sample.

Each network reads the same images with the mean image of the data it was trained on, as the study's AnB transfers
read half B with base A's mean (``mean_half``): where the data class takes a ``mean_half`` and the network's
checkpoint records its data module (``datamodule_hyper_parameters``) of the same class, split and root, the
section's ``mean_half`` becomes that data's ``mean_half`` or ``half`` (None where it is the target half). Otherwise
(a weights file, another dataset, ``match_mean`` off) the network reads the section as given.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from experiments.errors import InputFileError, SettingError
from experiments.validation_data import validation_count, validation_module
from models.loading import import_path

MIN_IMAGES = 10  # the probe holds out part of the sample: a handful on each side at least


@dataclass(frozen=True)
class Reading:
    """How one network reads the target data: its data section, and a line saying which mean image it subtracts."""

    data: dict[str, Any]
    note: str


def build_module(data: Mapping[str, Any], what: str = "the target data") -> Any:
    """The data module of a section, set up for validation; its refusal as a user error naming ``what``.

    Raises:
        SettingError: The class cannot be imported or refuses its settings.
        InputFileError: A file or folder it needs is missing.
    """
    try:
        return validation_module(data)
    except FileNotFoundError as err:
        raise InputFileError(f"{what} ({data.get('class_path')}): {err}") from err
    except (ValueError, TypeError, ImportError, AttributeError, RuntimeError) as err:
        raise SettingError(
            f"{what} ({data.get('class_path')} {dict(data.get('init_args') or {})}) cannot be "
            f"read: {type(err).__name__}: {err}"
        ) from err


def sample_indices(total: int, images: int, seed: int) -> list[int]:
    """``min(images, total)`` of ``range(total)`` drawn with ``seed``, in increasing order.

    Raises:
        SettingError: ``images`` below ``MIN_IMAGES``, or a validation set smaller than that.
    """
    if images < MIN_IMAGES:
        raise SettingError(f"--images {images}: the sample needs at least {MIN_IMAGES} images")
    if total < MIN_IMAGES:
        raise SettingError(
            f"the target data's validation set holds {total} images, fewer than the {MIN_IMAGES} a "
            "prediction needs: give a larger validation set"
        )
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:images]
    return sorted(order.tolist())


def count_of(module: Any, data: Mapping[str, Any]) -> int:
    """The size of the module's validation set.

    Raises:
        SettingError: The module has no sized ``val_set`` to draw from.
    """
    total = validation_count(module)
    if total is None:
        raise SettingError(
            f"the target data {data.get('class_path')} has no val_set of known length to draw the "
            "sample from: give a data module that builds val_set in setup"
        )
    return total


def _setting(cls: type, init: Mapping[str, Any], name: str) -> Any:
    """The value of setting ``name``: given in ``init``, else the class's default (None without one)."""
    if name in init:
        return init[name]
    parameter = inspect.signature(cls).parameters.get(name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def reading(data: Mapping[str, Any], recorded: Mapping[str, Any] | None, match_mean: bool = True) -> Reading:
    """How a network whose checkpoint recorded the data module ``recorded`` reads the target ``data``.

    Args:
        data: The target data section (``class_path``, ``init_args``).
        recorded: The network's training data module's hyperparameters (with ``_class_path``), or None.
        match_mean: Give the network its own training data's mean image (see the module's docstring).
    """
    section = {"class_path": data["class_path"], "init_args": dict(data.get("init_args") or {})}
    cls = import_path(section["class_path"])
    init = section["init_args"]
    if "mean_half" not in inspect.signature(cls).parameters:
        return Reading(section, "as the data section says (its data module takes no mean_half)")
    given = f"the mean image of half {_setting(cls, init, 'mean_half') or _setting(cls, init, 'half')}"
    if not match_mean or not recorded:
        why = "match_mean off" if not match_mean else "its checkpoint records no data module"
        return Reading(section, f"{given}, as the data section says ({why})")
    try:
        same_class = import_path(recorded.get("_class_path", section["class_path"])) is cls
    except (ImportError, AttributeError, ValueError):
        same_class = False
    same = same_class and all(recorded[key] == _setting(cls, init, key) for key in ("split", "root") if key in recorded)
    own = recorded.get("mean_half") or recorded.get("half")
    if not same or own is None:
        return Reading(
            section, f"{given}, as the data section says (its checkpoint's data differs in class, split or root)"
        )
    init["mean_half"] = None if own == _setting(cls, init, "half") else own
    return Reading(section, f"the mean image of half {own}, the one it was trained with (its checkpoint)")
