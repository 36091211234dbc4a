"""`make lock`: constraints.txt pins what the project needs, not what one machine happens to hold.

The pins are the installed versions of the project's declared requirements (main, ``dev`` and ``cluster``) and of
everything those require on this platform, walked through the installed packages' metadata. Left out: the packages
that belong to one torch build (``nvidia-*``, ``cuda-*``, ``triton``), so torch's CUDA (or CPU-only) wheels follow
the index the user installs torch from.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("dev", "cluster")
TORCH_BUILD = re.compile(r"^(nvidia-|cuda-|triton$)")
HEADER = """\
# The tested versions of what the project imports and of what those packages require (`make lock` wrote it:
# python -m experiments.lock). `make setup` installs with pip install -c constraints.txt. Not pinned: the
# packages of one torch build (nvidia-*, cuda-*, triton), which follow the index torch is installed from.
"""


def normalise(name: str) -> str:
    """PEP 503 name: ``Typing_Extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """The project's declared requirement strings: the main dependencies and the named extras."""
    if sys.version_info < (3, 11):
        raise SystemExit("lock: `make lock` needs Python 3.11+ (tomllib)")
    import tomllib  # type: ignore[import-not-found,unused-ignore]  # mypy checks as Python 3.10, which lacks it

    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return list(project["dependencies"]) + [r for extra in extras for r in optional.get(extra, [])]


def closure(requirements: list[str]) -> dict[str, str]:
    """Installed name -> version for the requirements and, transitively, what they require on this platform.

    Raises:
        SystemExit: a requirement is not installed in this environment (run ``make setup`` first).
    """
    pinned: dict[str, str] = {}
    todo = [(Requirement(r), frozenset[str]()) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, extras = todo.pop()
        key = (normalise(requirement.name), frozenset(requirement.extras) | extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(
                f"lock: {requirement.name} (required as '{requirement}') is not installed in "
                f"{sys.prefix}; run `make setup` first"
            ) from None
        name = normalise(distribution.metadata["Name"])
        pinned[name] = distribution.version
        for line in distribution.requires or []:
            child = Requirement(line)
            wanted = set(key[1]) or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in wanted):
                todo.append((child, frozenset()))
    return pinned


def portable(pins: dict[str, str]) -> dict[str, str]:
    """The pins without the packages of one torch build."""
    return {name: version for name, version in pins.items() if not TORCH_BUILD.match(name)}


def render(pins: dict[str, str]) -> str:
    """constraints.txt's text: the header, then ``name==version`` sorted by name."""
    return HEADER + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def main(argv: list[str] | None = None) -> None:
    """Write (or with ``--check``, compare against) constraints.txt."""
    parser = argparse.ArgumentParser(prog="python -m experiments.lock", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what lock would write")
    args = parser.parse_args(argv)
    text = render(portable(closure(project_requirements())))
    if args.check:
        if args.output.read_text() != text:
            raise SystemExit(f"lock: {args.output} is not what `make lock` writes from this environment; run it")
        return
    args.output.write_text(text)
    print(f"lock: wrote {args.output}")


if __name__ == "__main__":
    main()
