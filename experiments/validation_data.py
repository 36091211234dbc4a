"""A config's data section read as a network takes it, without a Trainer: its validation images and labels.

The layer-similarity panel (``experiments.study.similarity``) and the transferability prediction
(``experiments.predict``) read the validation images of a data section (``class_path``, ``init_args``, as in a fit's
``config.yaml``) the same way: the data module built from it, ``prepare_data``, ``setup("validate")``, chosen
examples of its ``val_set`` read through its ``collate_fn`` (or its whole ``val_dataloader`` if it has no sized
``val_set``), each batch through its ``on_before_batch_transfer``/``on_after_batch_transfer`` hooks (where some
preprocessing may run). Evaluation preprocessing only: no augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Subset

from models.loading import import_path


def validation_module(data: Mapping[str, Any]) -> LightningDataModule:
    """The data module of a data section, prepared and set up for validation.

    Raises:
        Whatever importing ``class_path``, the constructor, ``prepare_data`` or ``setup`` raise.
    """
    module = import_path(data["class_path"])(**dict(data.get("init_args") or {}))
    module.prepare_data()
    module.setup("validate")
    return module


def validation_count(module: LightningDataModule) -> int | None:
    """How many validation examples the module's ``val_set`` holds; None without a sized ``val_set``."""
    dataset = getattr(module, "val_set", None)
    return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None


def spread_indices(total: int, count: int) -> list[int]:
    """At most ``count`` of ``range(total)`` spread evenly (every ``total // count``-th), all where fewer."""
    return list(range(total)) if total <= count else [i * total // count for i in range(count)]


def validation_batches(
    module: LightningDataModule, indices: Sequence[int] | None = None, batch_size: int = 256
) -> Iterator[Any]:
    """The module's validation batches after its batch hooks: the examples ``indices`` of its ``val_set`` in that
    order (None: all of them; without a sized ``val_set``, its ``val_dataloader``).

    Raises:
        ValueError: ``indices`` given for a module without a sized ``val_set``.
    """
    if validation_count(module) is not None:
        dataset = module.val_set  # type: ignore[attr-defined]
        chosen = range(len(dataset)) if indices is None else list(indices)
        loader = DataLoader(
            Subset(dataset, chosen),
            batch_size=batch_size,
            collate_fn=getattr(module, "collate_fn", None),
            num_workers=getattr(module, "num_workers", 0),
        )
    elif indices is None:
        loader = module.val_dataloader()
    else:
        raise ValueError(f"{type(module).__name__} has no val_set of known length to choose examples from")
    for batch in loader:
        batch = module.on_before_batch_transfer(batch, 0)
        yield module.on_after_batch_transfer(batch, 0)
