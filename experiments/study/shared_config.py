"""What every cell of a study shares: the study's fit configs and overrides, rendered once, and what they say.

:class:`SharedConfig` reads the data (its halves per split, the settings a cell on data read from disk pins), the
network (its stages, from a network built on the meta device) and the pretrained weights file (its path and sha256,
and whether it fits the network) from that one config; :func:`render_config` renders any job's overlays through the
CLI's own parser (``experiments.study.overlays``), a rejected config stopping the study by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import yaml

from experiments.study.config import Study
from experiments.study.errors import StudyError
from experiments.study.overlays import ConfigError, Overlay, render
from models.base_file import load_base, sha256_of
from models.classifier import DEFAULT_CLASSIFIER, LINKED_FROM_DATA
from models.loading import import_path
from models.network import StagedNetwork
from models.transfer import copy_stages, transferable_stages


class SharedConfig:
    """The study's shared fit config and what it says of the data, the network and the pretrained weights file.

    Args:
        study: The study config.
    """

    def __init__(self, study: Study) -> None:
        self.study = study
        self._halves: Any = None
        self._stage_names: tuple[str, ...] | None = None
        self._fit_config: dict[str, Any] | None = None
        self._pins: dict[str, dict[str, Any]] = {}
        self._weights_sha256: str | None = None

    def overlays(self) -> list[Overlay]:
        """The study's fit configs and its overrides: every cell's config before the cell's own settings."""
        return [*self.study.fit_configs, *([self.study.overrides] if self.study.overrides else [])]

    def fit_config(self) -> dict[str, Any]:
        """The study's fit configs and overrides rendered once: every cell's config before its own settings."""
        if self._fit_config is None:
            self._fit_config = yaml.safe_load(render_config(self.overlays(), "the study's fit configs"))
        return self._fit_config

    def network_stage_names(self) -> tuple[str, ...]:
        """The stages of the study's network (the head last), from its model config, built without memory.

        Raises:
            StudyError: the model config cannot be built.
        """
        if self._stage_names is None:
            model = self.fit_config().get("model") or {}
            class_path = model.get("class_path") or DEFAULT_CLASSIFIER
            arguments = {
                key: value for key, value in (model.get("init_args") or {}).items() if key not in LINKED_FROM_DATA
            }
            arguments["num_classes"] = 2  # the stages do not depend on the task; 2: the fewest a classifier takes
            try:
                self._stage_names = tuple(meta_network(class_path, arguments).stage_names)
            except Exception as err:
                raise StudyError(f"the study's model ({class_path}) cannot be built from its config: {err}") from err
        return self._stage_names

    def split_halves(self, split: str) -> tuple[str, ...]:
        """The halves of ``split``, from the study's data class.

        Raises:
            StudyError: the data class has no halves, or its settings give none.
        """
        if self._halves is None:
            class_path = (self.fit_config().get("data") or {}).get("class_path")
            try:
                data_class = import_path(class_path) if class_path and "." in class_path else None
            except AttributeError:  # the module has no such class
                data_class = None
            if data_class is None or not callable(getattr(data_class, "halves", None)):
                raise StudyError(
                    f"the study's data class {class_path!r} has no halves(split): the study needs a data module "
                    "of class splits such as datamodules.FashionMNISTHalf or datamodules.ImageNetHalf"
                )
            # A data set whose classes are read from disk (datamodules.ImageFolderHalves) says its halves from its
            # settings; the others from their class.
            study_halves = getattr(data_class, "study_halves", None)
            self._halves = self._from_data(study_halves, self.data_init_args()) if study_halves else data_class.halves
        return tuple(self._halves(split))

    def data_init_args(self) -> dict[str, Any]:
        """The study's data settings (``data.init_args``)."""
        return dict((self.fit_config().get("data") or {}).get("init_args") or {})

    @staticmethod
    def _from_data(hook: Any, *args: Any) -> Any:
        """A hook of the data class called on the study's data settings; its errors stop the study, by name."""
        try:
            return hook(*args)
        except (OSError, ValueError) as err:
            raise StudyError(f"the study's data (data.init_args): {err}") from err

    def data_pins(self, split: str) -> dict[str, Any]:
        """The data settings a cell on ``split`` records of data read from disk (its classes, the checksum of its
        split file: ``study_pins`` of the data class), so that a cell trained on other data is refused; {} for
        the others."""
        if split not in self._pins:
            class_path = (self.fit_config().get("data") or {}).get("class_path") or ""
            data_class = import_path(class_path) if "." in class_path else None
            hook = getattr(data_class, "study_pins", None)
            self._pins[split] = self._from_data(hook, self.data_init_args(), split) if hook else {}
        return self._pins[split]

    def weights_file(self) -> str:
        """The pretrained-base panel's weights file (``grid.pretrained.weights``).

        Raises:
            StudyError: the study has no pretrained panel, or its file is missing.
        """
        spec = self.study.grid.pretrained
        if spec is None or not os.path.isfile(spec.weights):
            given = "no grid.pretrained" if spec is None else f"grid.pretrained.weights {spec.weights!r} is not a file"
            raise StudyError(
                f"{given}: give the weights file the pretrained cells copy, e.g. saved once with torch.save("
                'torchvision.models.resnet18(weights="IMAGENET1K_V1").state_dict(), "resnet18.pth")'
            )
        return spec.weights

    def weights_sha256(self) -> str:
        """The sha256 of the weights file, read once per plan (the cells record it)."""
        if self._weights_sha256 is None:
            self._weights_sha256 = sha256_of(self.weights_file())
        return self._weights_sha256

    def weights_misfit(self, n: int, config: dict[str, Any]) -> str | None:
        """Why the weights file cannot give stages 1..``n`` to the network of a cell's rendered ``config`` (None: it
        can), checked on shapes alone before anything trains: a file of another architecture is refused now."""
        data, model = config["data"], config["model"]
        try:
            module = import_path(data["class_path"])(**(data.get("init_args") or {}))
            arguments = {**(model.get("init_args") or {}), **{key: getattr(module, key) for key in LINKED_FROM_DATA}}
            net = meta_network(model.get("class_path") or DEFAULT_CLASSIFIER, arguments)
            weights = self.weights_file()
            stages = transferable_stages(tuple(net.stage_names))[:n]
            copy_stages(load_base(weights)[0], net, stages, f"grid.pretrained.weights {weights!r}", dry_run=True)
        except (ValueError, TypeError, FileNotFoundError) as err:
            return str(err)
        return None


def render_config(overlays: Sequence[Overlay], what: str) -> str:
    """The full config (YAML) of ``overlays`` (``experiments.study.overlays.render``).

    Raises:
        StudyError: the CLI rejects it; the message names ``what`` it is the config of.
    """
    try:
        return render(overlays)
    except ConfigError as err:
        raise StudyError(f"the config of {what} is invalid: {err}") from err


def meta_network(class_path: str, arguments: dict[str, Any]) -> StagedNetwork:
    """The network of the classifier at ``class_path`` built on the meta device: shapes only, no weights allocated or
    drawn."""
    with torch.device("meta"):
        return import_path(class_path)(**arguments).net
