"""Fixtures of the data module tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fake_data import make_fake_imagenet


@pytest.fixture(scope="session")
def fake_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake ImageNet tree, 2 train and 1 val image per class, made once per session (do not modify it)."""
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet"))
