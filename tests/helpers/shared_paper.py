"""The project's reference data (``../shared/paper``, not part of the project) and the paper's ImageNet halves, for
the tests of the splits and of the shipped ImageNet lists; tests that need the reference data skip where it is absent.
"""

from __future__ import annotations

import pytest

from tests.helpers import REPO

SHARED_PAPER = REPO.parent / "shared" / "paper"
needs_shared = pytest.mark.skipif(
    not (SHARED_PAPER / "whole_valid_files.txt").is_file(),
    reason=f"the reference data {SHARED_PAPER} is absent (it is not part of the project)",
)

HALVES = [(f"random{s}", h) for s in range(4) for h in ("A", "B")] + [("natman", "natural"), ("natman", "manmade")]
