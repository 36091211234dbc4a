"""Run the README's command blocks (and those of the ``docs/`` pages it links to) as a new user would, and time them.

``python -m experiments.readme_check`` copies the working tree (tracked files and untracked ones git does not
ignore, the set-up's ``.venv`` linked, nothing else: no ``runs/``, ``studies/`` or ``data/``) into a temporary
folder, so that every block meets what a fresh clone holds; then it runs every ``bash`` block of ``README.md``
and of each ``docs/*.md`` page the README links to, page by page in the README's link order, each block in order
as one ``bash -eo pipefail`` script, and compares the time each took with the time its Markdown states. CI runs
it as its smoke step (``.ci/run``); ``--list`` prints the blocks and their labels without running anything, and
``--factor`` widens the tolerance (to measure the blocks on a busy machine).

The Markdown grammar, which ``tests/test_readme.py`` checks on every page:

- A command block is a fenced ``bash`` block. The text between the previous fence (or the page's start) and
  the block is its *preamble*.
- Its preamble states how long the block takes, once, in one form: ``(about 2 min on 2 CPU cores)`` (``s``,
  ``min`` or ``h``; a number, decimals allowed). The run fails where the measured time is more than twice the
  stated one (the example got slower, or the label is optimistic) or less than half (the label is wrong).
- Or its preamble holds ``<!-- readme-check: skip (why) -->``: the block is too long for CI (a whole study,
  ImageNet) or is CI's own step (set-up, the test suite). Skipped blocks are still parsed by the tests.

Times are of the development machine's class, 2 CPU cores and no GPU; the factor of two absorbs the usual
spread between such machines, not a GPU machine's speed-up. The module lives in the package rather than in ``.ci/``
so that the tests read the pages with this same grammar and anyone runs the check on any clone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABEL = re.compile(r"\(about\s+(\d+(?:\.\d+)?)\s+(s|min|h)\s+on\s+2\s+CPU\s+cores\)")  # may wrap lines
SKIP = re.compile(r"<!-- readme-check: skip \((.+?)\) -->")
UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
FACTOR = 2.0  # a block may take between stated / FACTOR and stated * FACTOR
LINK = re.compile(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]*)?\)")
SET_UP = (".venv/.installed", ("pyproject.toml", "constraints.txt"))  # the Makefile's stamp and what it depends on


class BlockError(ValueError):
    """A page whose command blocks break the grammar of the module docstring."""


@dataclass(frozen=True)
class Block:
    """One ``bash`` block of a page.

    Args:
        page: The page's path relative to the repository root, e.g. ``README.md``.
        line: The line of the block's opening fence (1-based).
        script: The block's text, as bash reads it.
        seconds: The time its preamble states, or None where it is skipped.
        skip: Why it is not run (its skip marker), or None.
    """

    page: str
    line: int
    script: str
    seconds: float | None
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse(text: str, page: str) -> list[Block]:
    """The ``bash`` blocks of a Markdown page, each with its stated time or its skip marker.

    Raises:
        BlockError: A block with neither a time nor a skip marker, a preamble with two times or two markers, or
            an unclosed fence (the message names the page and line).
    """
    blocks: list[Block] = []
    preamble: list[str] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        if not line.startswith("```"):
            preamble.append(line)
            number += 1
            continue
        language, start = line[3:].strip(), number + 1
        body: list[str] = []
        number += 1
        while number < len(lines) and not lines[number].startswith("```"):
            body.append(lines[number])
            number += 1
        if number == len(lines):
            raise BlockError(f"{page}:{start}: a fence that is never closed")
        number += 1
        if language == "bash":
            blocks.append(_block(page, start, "\n".join(preamble), "\n".join(body) + "\n"))
        preamble = []
    return blocks


def _block(page: str, line: int, preamble: str, script: str) -> Block:
    labels, skips = LABEL.findall(preamble), SKIP.findall(preamble)
    if len(labels) > 1 or len(skips) > 1:
        raise BlockError(
            f"{page}:{line}: the text before this block states {len(labels)} times and {len(skips)} "
            "skip markers; give it one: '(about N min on 2 CPU cores)' or "
            "'<!-- readme-check: skip (why) -->'"
        )
    if skips:
        return Block(page, line, script, None, skips[0])
    if not labels:
        raise BlockError(
            f"{page}:{line}: no stated time before this block: say how long it takes, "
            "'(about N min on 2 CPU cores)', or mark it '<!-- readme-check: skip (why) -->'"
        )
    amount, unit = labels[0]
    return Block(page, line, script, float(amount) * UNITS[unit], None)


def pages(root: Path = ROOT) -> list[str]:
    """``README.md`` and every ``docs/*.md`` page it links to, in the order of their first link."""
    linked = LINK.findall((root / "README.md").read_text())
    return ["README.md", *dict.fromkeys(linked)]


def blocks(root: Path = ROOT, names: Sequence[str] | None = None) -> list[Block]:
    """The blocks of ``names`` (default: :func:`pages`), page by page, each page's in order."""
    return [block for name in (names or pages(root)) for block in parse((root / name).read_text(), name)]


@dataclass(frozen=True)
class Outcome:
    """What running one block gave: its measured seconds (None: skipped) and the verdict, ``ok`` or why not."""

    block: Block
    seconds: float | None
    verdict: str
    cpu_seconds: float | None = None  # user + system time of the block's processes: its cost on a shared machine

    @property
    def ok(self) -> bool:
        return self.verdict in ("ok", "skipped")


def judge(stated: float, measured: float, factor: float = FACTOR) -> str:
    """``ok`` where ``measured`` lies within ``factor`` of ``stated`` either way, else what is wrong."""
    if measured > stated * factor:
        return f"too slow: {measured:.0f} s against the stated {_duration(stated)} (more than {factor:g}x)"
    if measured < stated / factor:
        return (
            f"too fast: {measured:.0f} s against the stated {_duration(stated)} (under 1/{factor:g}: the label "
            "is wrong)"
        )
    return "ok"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def run(block: Block, folder: Path, log: Path, factor: float = FACTOR, grace: float = 60.0) -> Outcome:
    """Run ``block`` in ``folder`` with bash (``-e -o pipefail``), its output appended to ``log``; time and judge it.

    A block still running at ``factor`` times its stated time plus ``grace`` seconds is stopped (its whole process
    group) and fails.
    """
    if block.skip is not None or block.seconds is None:
        return Outcome(block, None, "skipped")
    limit = block.seconds * factor + grace
    with log.open("a") as out:
        out.write(f"\n===== {block.where}\n{block.script}=====\n")
        out.flush()
        start, cpu = time.monotonic(), _children_cpu()
        process = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", block.script],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _stop(process)
            return Outcome(block, time.monotonic() - start, f"stopped after {limit:.0f} s", _children_cpu() - cpu)
        except BaseException:  # Ctrl-C or SIGTERM of the check: its block's processes go with it
            _stop(process)
            raise
        seconds, cpu = time.monotonic() - start, _children_cpu() - cpu
    if returncode != 0:
        return Outcome(block, seconds, f"failed: exit status {returncode} (output in {log})", cpu)
    return Outcome(block, seconds, judge(block.seconds, seconds, factor), cpu)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and everything it started (its own session's process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fresh_copy(root: Path, into: Path) -> list[str]:
    """Copy what a fresh clone of ``root`` would hold, with the working tree's changes, into ``into``: its tracked
    files and the untracked ones git does not ignore, with their times, and ``root/.venv`` linked there.

    The copy shares the venv, so ``make`` in the copy must never set up again (that would point the venv's
    editable install at the copy): where ``pyproject.toml`` or ``constraints.txt`` is newer than the set-up's stamp,
    the copy's file gets the stamp's time, and the returned warnings say so (run ``make setup`` to test a set-up).

    Raises:
        RuntimeError: ``root`` has no set-up (``make setup`` first).
        subprocess.CalledProcessError: ``root`` is not a git work tree.
    """
    stamp, sources = SET_UP
    if not (root / stamp).is_file():
        raise RuntimeError(f"no set-up in {root}: run `make setup` there first")
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = root / name
        if source.is_file() and not source.is_symlink():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    (into / ".venv").symlink_to(root / ".venv")
    set_up = (root / stamp).stat().st_mtime
    warnings = []
    for name in sources:
        if (into / name).stat().st_mtime > set_up:
            os.utime(into / name, (set_up, set_up))
            warnings.append(
                f"{name} is newer than the venv's set-up: the blocks run with the venv as it is "
                "(`make setup` first to include it)"
            )
    return warnings


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or ``--list``) the blocks; 0 when every run block exits 0 within its time, else 1."""
    parser = argparse.ArgumentParser(prog="python -m experiments.readme_check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "pages",
        nargs="*",
        help="pages to run, relative to the repository root (default: README.md and the docs/ pages it links to)",
    )
    parser.add_argument("--list", action="store_true", help="print the blocks and their stated times; run nothing")
    parser.add_argument(
        "--factor",
        type=float,
        default=FACTOR,
        help="the tolerance either way, a factor of the stated time (default 2; a larger one to "
        "measure the blocks on a shared machine without failing them)",
    )
    args = parser.parse_args(argv)
    if args.factor < 1:
        parser.error(f"--factor must be at least 1, got {args.factor}")
    try:
        found = blocks(ROOT, args.pages or None)
    except BlockError as err:
        print(f"readme_check: {err}", file=sys.stderr)
        return 1
    if args.list:
        for block in found:
            print(f"{block.where}: {'skip (' + block.skip + ')' if block.skip else _duration(block.seconds or 0)}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the running block is stopped too
    folder = Path(tempfile.mkdtemp(prefix="readme_check_"))
    try:
        for warning in fresh_copy(ROOT, folder):
            print(f"readme_check: {warning}", file=sys.stderr)
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"readme_check: {err}", file=sys.stderr)
        shutil.rmtree(folder)
        return 1
    log = folder / "readme_check.log"
    print(
        f"readme_check: running {sum(b.skip is None for b in found)} of {len(found)} blocks in a fresh copy, {folder}",
        flush=True,
    )
    outcomes = []
    for block in found:
        outcome = run(block, folder, log, args.factor)
        outcomes.append(outcome)
        if outcome.seconds is None:
            print(f"{block.where}: skipped ({block.skip})", flush=True)
        else:
            print(
                f"{block.where}: stated {_duration(block.seconds or 0)}, measured {outcome.seconds:.0f} s "
                f"({outcome.cpu_seconds or 0:.0f} s of CPU): {outcome.verdict}",
                flush=True,
            )
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        print(f"readme_check: {len(failed)} block(s) failed; the copy and its log are kept: {log}", file=sys.stderr)
        return 1
    shutil.rmtree(folder)
    print("readme_check: every block ran within its stated time")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
