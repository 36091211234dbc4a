"""Reading a base file (models/base_file.py): tensors without wrapper prefixes, the file's sha256, a changed file
refused. The refusals a user meets through a fit (a missing, unsafe, unreadable or empty file) are tested through
``TransferCallback`` in tests/callbacks/test_transfer.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from models.base_file import check_sha256, load_base, strip_prefixes


def test_a_lightning_checkpoint_is_read_without_its_wrappers_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "base.ckpt"
    weights = {"net._orig_mod.conv1.weight": torch.arange(4.0), "net.fc8.bias": torch.ones(2)}
    torch.save({"state_dict": weights, "epoch": 3, "hyper_parameters": {"lr": 0.01}}, path)
    tensors, sha256 = load_base(str(path))
    assert sorted(tensors) == ["conv1.weight", "fc8.bias"]
    assert torch.equal(tensors["conv1.weight"], torch.arange(4.0))
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ambiguous_prefixes() -> None:
    """Two tensors that strip to one name are an error, not a silent pick."""
    with pytest.raises(ValueError, match="ambiguous.*'conv1.weight'"):
        strip_prefixes({"net.conv1.weight": torch.zeros(1), "module.conv1.weight": torch.ones(1)})


def test_a_changed_file_is_refused_naming_the_setting() -> None:
    check_sha256("base.ckpt", "ab" * 32, None)  # none expected: any file
    check_sha256("base.ckpt", "ab" * 32, "ab" * 32)
    with pytest.raises(ValueError, match=r"'base.ckpt' has sha256 abab.*\(transfer.base_sha256\).*Restore it"):
        check_sha256("base.ckpt", "ab" * 32, "cd" * 32, "transfer.base_sha256")
