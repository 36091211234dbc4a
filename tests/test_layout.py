"""`tests/` mirrors the packages (issue #22 item 5; docs/tests.md says where each kind of test lives).

Every package of the project has a test folder at the same path (`experiments/report/` -> `tests/experiments/report/`),
every folder of test modules mirrors a package or is one of the two that do not (`helpers/`, shared code without
tests, and `integration/`, runs across packages), and each is a package itself, so a test module is
`tests.<folder>.<module>` wherever pytest runs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import PACKAGES, REPO

TESTS = REPO / "tests"
NOT_MIRRORED = ("helpers", "integration")  # shared helpers; runs across packages


def package_folders(root: Path = REPO) -> set[Path]:
    """The project's packages as paths relative to the repository (`experiments/report`)."""
    return {init.parent.relative_to(root) for package in PACKAGES for init in (root / package).rglob("__init__.py")}


def folders_with_tests(tests: Path = TESTS) -> set[Path]:
    """The folders under `tests` that hold test modules, relative to it (`tests/` itself left out)."""
    return {path.parent.relative_to(tests) for path in tests.rglob("test_*.py")} - {Path(".")}


def strays(packages: set[Path], folders: set[Path]) -> list[str]:
    """The test folders that mirror no package and are not one of the folders that need not."""
    return sorted(str(folder) for folder in folders if folder not in packages and folder.parts[0] not in NOT_MIRRORED)


def test_every_package_has_its_test_package() -> None:
    missing = sorted(str(folder) for folder in package_folders() if not (TESTS / folder / "__init__.py").is_file())
    assert not missing, f"packages without a test package at the same path under tests/: {missing}"


def test_every_test_folder_mirrors_a_package() -> None:
    found = strays(package_folders(), folders_with_tests())
    assert not found, f"test folders that mirror no package (move their tests beside the package's): {found}"


def test_every_test_folder_is_a_package_and_helpers_hold_no_tests() -> None:
    assert not list((TESTS / "helpers").rglob("test_*.py")), "tests/helpers/ is shared code: tests go beside a package"
    for folder in folders_with_tests():
        assert (TESTS / folder / "__init__.py").is_file(), f"tests/{folder} has no __init__.py"


@pytest.mark.parametrize(("folder", "stray"), [("models", False), ("modles", True), ("experiments/reports", True)])
def test_the_mirror_check_finds_a_folder_named_after_no_package(tmp_path: Path, folder: str, stray: bool) -> None:
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "test_something.py").write_text("")
    assert strays(package_folders(), folders_with_tests(tmp_path)) == ([folder] if stray else [])
