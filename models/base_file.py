"""Reading a base file safely: its tensors, keyed without wrapper prefixes, and its sha256.

A base is a staged network's checkpoint (a Lightning checkpoint or its state dict) or a torchvision-format weights
file; either is read with ``weights_only=True`` and never unpickled unsafely, its wrappers' prefixes dropped
(``net._orig_mod.conv1.weight`` -> ``conv1.weight``), and its sha256 recorded so that a changed file is refused
(:func:`check_sha256`). Mapping a torchvision file's names to a network's stages, and what is copied from it, is
the transfer core's (``models.transfer``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re

import torch
from torch import Tensor

# Added in front of parameter names by the LightningModule (``net.``), DDP (``module.``),
# torch.compile (``_orig_mod.``) and common wrappers (``model.``).
PREFIXES: tuple[str, ...] = ("net.", "model.", "module.", "_orig_mod.")


def sha256_of(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop the leading ``PREFIXES`` from every key (``net._orig_mod.conv1.weight`` -> ``conv1.weight``).

    Raises:
        ValueError: if two keys become the same name.
    """
    stripped: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key
        while name.startswith(PREFIXES):
            name = name.split(".", 1)[1]
        if name in stripped:
            raise ValueError(f"transfer base checkpoint is ambiguous: several tensors are named {name!r}")
        stripped[name] = value
    return stripped


def load_base(path: str) -> tuple[dict[str, Tensor], str]:
    """Read a base checkpoint safely: its tensors, keyed without wrapper prefixes, and the file's sha256.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the file is not a PyTorch checkpoint of tensors, or would need arbitrary
            code to unpickle (refused by ``weights_only=True``, never retried unsafely).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"transfer base_checkpoint {path!r} does not exist or is not a file")
    try:
        sha256 = sha256_of(path)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))  # weights_only met a class or function
        if unsafe:
            raise ValueError(
                f"transfer base_checkpoint {path!r} was refused: unpickling it would run arbitrary code "
                f"(it refers to {unsafe.group(1)}, which weights_only=True does not allow). Save the base's "
                "state_dict, or a Lightning checkpoint whose hyperparameters are plain values"
            ) from err
        raise ValueError(f"transfer base_checkpoint {path!r} is not a readable PyTorch checkpoint") from err
    except Exception as err:  # corrupt, truncated, unreadable or not a torch.save file at all
        raise ValueError(
            f"transfer base_checkpoint {path!r} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    tensors = (
        {}
        if not isinstance(state, dict)
        else {key: value for key, value in state.items() if isinstance(key, str) and isinstance(value, Tensor)}
    )
    if not tensors:
        raise ValueError(
            f"transfer base_checkpoint {path!r} holds no weights: expected a Lightning checkpoint (a dict "
            f"with 'state_dict') or a state dict of tensors, got {type(checkpoint).__name__}"
        )
    return strip_prefixes(tensors), sha256


def check_sha256(path: str, sha256: str, expected: str | None, setting: str = "base_sha256") -> None:
    """Refuse a base file whose content is not the one a run was configured with (``expected`` None: any).

    Raises:
        ValueError: ``sha256`` (the file's) is not ``expected``; the message names the file and what to do.
    """
    if expected is not None and sha256 != expected:
        raise ValueError(
            f"transfer base_checkpoint {path!r} has sha256 {sha256[:16]}..., but this run was configured with the "
            f"file of sha256 {expected[:16]}... ({setting}): the file changed since. Restore it, or set "
            f"{setting} to the new file's (null: any file)"
        )
