"""The README's command blocks, and those of the ``docs/`` pages it links to, still match the code.

Every block is read as a shell would (continuation lines joined, ``NAME=value`` lines substituted, comments
dropped). A ``transferability`` command is parsed by the CLI itself (``--print_config``: every key and type checked,
nothing trained), a study's by the study parser and ``Study``'s own checks, the other scripts' by their parsers;
``make`` targets must exist in the Makefile, ``python -m`` modules must exist and ``python -c`` code must compile.
Every block states its time or is marked skipped (``experiments.readme_check``, which CI's smoke step runs to run
and time the blocks), and every link of the pages resolves. The runner itself is tested here on small pages.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from experiments.readme_check import Block, BlockError, blocks, fresh_copy, judge, pages, parse, run
from tests.helpers import REPO

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")

BIN = ".venv/bin/"


def commands(found: list[Block]) -> list[list[str]]:
    """The commands of ``found``, in order, each as its words (variables substituted)."""
    out = []
    for block in found:
        variables: dict[str, str] = {}
        for line in block.script.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if len(words) == 1 and re.fullmatch(r"[A-Z]+=\S+", words[0]):
                name, _, value = words[0].partition("=")
                variables[name] = value
                continue
            out.append(
                [re.sub(r"\$([A-Z]+)", lambda m, variables=variables: variables[m.group(1)], word) for word in words]
            )
    return out


PAGES = pages(REPO)
BLOCKS = blocks(REPO)
COMMANDS = commands(BLOCKS)


def test_the_pages_have_commands_of_every_script() -> None:
    """The parse below sees the pages' commands (a changed block format would leave it checking nothing)."""
    programs = {words[0].removeprefix(BIN) for words in COMMANDS}
    assert {
        "make",
        "python",
        "transferability",
        "transferability-study",
        "transferability-compare",
        "transferability-prepare-imagenet",
    } <= programs


def test_the_readme_links_every_page_of_docs() -> None:
    """Every hand-written page of ``docs/`` is reachable from the README, so its blocks are parsed and run; the
    others are the study reports that ``experiments.report.pages`` writes (no blocks)."""
    from experiments.report.shipped import COMPARISON, STUDIES

    written = {f"docs/{study.name}_effects.md" for study in STUDIES} | {f"docs/{COMPARISON[4]}.md"}
    assert {f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")} - written == set(PAGES) - {"README.md"}


def test_every_block_states_its_time_or_why_it_is_skipped() -> None:
    """Parsing raised on none; the demo is run (CI's smoke step), the whole study and the tests are not."""
    scripts = {block.script.strip(): block for block in BLOCKS}
    assert scripts["make demo"].skip is None and scripts["make demo"].seconds == 30
    assert scripts["make study"].skip and scripts["make test"].skip
    assert all(block.seconds for block in BLOCKS if block.skip is None)


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of ``path``'s headings."""
    return {
        re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.M)
    }


def test_every_link_of_the_pages_resolves() -> None:
    """Each relative link of the README and its pages (and of the results page) names a file, and its anchor a
    heading there."""
    for page in [*PAGES, "docs/results.md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", (REPO / page).read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            name, _, anchor = target.partition("#")
            path = (REPO / page).parent / name if name else REPO / page
            assert path.exists(), f"{page}: link to {target}: no such file"
            if anchor:
                assert anchor in _anchors(path), f"{page}: link to {target}: no such heading"


def test_make_targets_exist() -> None:
    """Each ``make X`` of the pages is a target of the Makefile (``NAME=value`` words are its variables)."""
    targets = set(re.findall(r"^([a-z]+):", (REPO / "Makefile").read_text(), re.M))
    for words in COMMANDS:
        if words[0] == "make":
            assert {word for word in words[1:] if "=" not in word} <= targets, words


def test_python_commands_name_modules_and_code_that_exist() -> None:
    """``python -m M`` names a module of the project; ``python -c CODE`` compiles and imports what it uses."""
    for words in COMMANDS:
        if words[0] != BIN + "python":
            continue
        if words[1] == "-m":
            assert importlib.util.find_spec(words[2]) is not None, words
        else:
            assert words[1] == "-c", words
            code = compile(words[2], "<page>", "exec")
            for module in re.findall(r"from ([\w.]+) import", words[2]):
                assert importlib.util.find_spec(module) is not None, (module, code)


def test_cli_commands_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``transferability`` command parses with the CLI's own parser; a config one command prints
    (``--print_config > my.yaml``) is the one the next commands read."""
    from experiments.cli import main

    monkeypatch.chdir(REPO)
    printed: dict[str, Path] = {}
    for words in COMMANDS:
        if words[0] != BIN + "transferability":
            continue
        args = [str(printed.get(word, word)) for word in words[1:]]
        target = None
        if ">" in args:
            target = args[args.index(">") + 1]
            args = args[: args.index(">")]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
            main([*args, *([] if "--print_config" in args else ["--print_config"])])
        assert stop.value.code in (0, None), f"{' '.join(words)}: exit {stop.value.code}"
        if target is not None:
            printed[target] = tmp_path / target
            printed[target].write_text(out.getvalue())


def test_study_compare_and_prepare_commands_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Study commands pass the study parser and ``Study``'s checks; compare's tables exist; prepare's flags parse."""
    from datamodules.prepare import _parser as prepare_parser
    from experiments.study.config import build_parser, study_from_config

    monkeypatch.chdir(REPO)
    for words in COMMANDS:
        program, args = words[0].removeprefix(BIN), words[1:]
        if program == "transferability-study":
            parser = build_parser()
            study_from_config(parser, parser.parse_args(args))
        elif program == "transferability-compare":
            tables = [arg for arg in args if arg.endswith(".csv")]
            assert tables and all((REPO / table).is_file() for table in tables), words
        elif program == "transferability-prepare-imagenet":
            prepare_parser().parse_args(args)


# The runner (experiments.readme_check) on small pages.


def test_a_block_needs_one_time_or_a_skip_marker() -> None:
    assert parse("(about 2 min on 2 CPU cores)\n\n```bash\ntrue\n```\n", "p.md")[0].seconds == 120
    assert parse("<!-- readme-check: skip (long) -->\n```bash\ntrue\n```\n", "p.md")[0].skip == "long"
    assert parse("```text\nnot a command\n```\n", "p.md") == []
    for page, message in (
        ("text\n```bash\ntrue\n```\n", "no stated time"),
        ("(about 1 s on 2 CPU cores) (about 2 s on 2 CPU cores)\n```bash\ntrue\n```\n", "2 times"),
        ("(about 1 s on 2 CPU cores)\n```bash\ntrue\n", "never closed"),
    ):
        with pytest.raises(BlockError, match=message):
            parse(page, "p.md")
    # a block's preamble starts after the previous fence: the first block's time does not carry over
    with pytest.raises(BlockError, match="p.md:5: no stated time"):
        parse("(about 1 s on 2 CPU cores)\n```bash\ntrue\n```\n```bash\ntrue\n```\n", "p.md")


def test_stated_times_hold_within_a_factor_of_two() -> None:
    assert judge(60, 100) == "ok" and judge(60, 31) == "ok"
    assert judge(60, 121).startswith("too slow") and judge(60, 29).startswith("too fast")


def test_blocks_run_in_order_in_one_folder_and_are_timed(tmp_path: Path) -> None:
    page = (
        "(about 2 s on 2 CPU cores)\n```bash\nsleep 2\necho made > made.txt\n```\n"
        "(about 1 s on 2 CPU cores)\n```bash\ntest -f made.txt\nsleep 1\n```\n"
        "(about 10 s on 2 CPU cores)\n```bash\ntrue\n```\n"
        "(about 1 s on 2 CPU cores)\n```bash\nexit 3\n```\n"
        "(about 1 s on 2 CPU cores)\n```bash\nfalse | true\n```\n"
        "<!-- readme-check: skip (never) -->\n```bash\nexit 1\n```\n"
    )
    log = tmp_path / "log.txt"
    outcomes = [run(block, tmp_path, log) for block in parse(page, "p.md")]
    assert [outcome.verdict.split(":")[0] for outcome in outcomes] == [
        "ok",
        "ok",
        "too fast",
        "failed",
        "failed",
        "skipped",
    ]
    assert 2 <= outcomes[0].seconds < 4 and "exit status 3" in outcomes[3].verdict  # and pipefail: status 1
    assert "exit status 1" in outcomes[4].verdict
    assert "===== p.md:2" in log.read_text()  # each block's output is logged under its place


def test_a_block_past_twice_its_time_is_stopped(tmp_path: Path) -> None:
    """The whole process group is stopped: a block's children do not outlive it."""
    start = time.monotonic()
    block = Block("p.md", 1, "sleep 600 &\necho $! > child.pid\nwait\n", 1.0, None)
    outcome = run(block, tmp_path, tmp_path / "log.txt", factor=2.0, grace=0.0)
    assert outcome.verdict == "stopped after 2 s" and time.monotonic() - start < 30
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.5)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_the_fresh_copy_holds_what_a_clone_would(tmp_path: Path) -> None:
    """Tracked and untracked files, not ignored ones; the venv linked; a set-up older than pyproject.toml is not
    redone in the copy (it would point the shared venv at the copy)."""
    repo, copy = tmp_path / "repo", tmp_path / "copy"
    (repo / ".venv").mkdir(parents=True)
    (repo / ".venv" / ".installed").write_text("")
    for name, text in (
        (".gitignore", "runs/\n.venv/\n"),
        ("pyproject.toml", "x"),
        ("constraints.txt", "y"),
        ("tracked.md", "t"),
        ("untracked.md", "u"),
        ("runs/old.txt", "o"),
    ):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(
        ["git", "add", ".gitignore", "pyproject.toml", "constraints.txt", "tracked.md"], cwd=repo, check=True
    )
    stamp = (repo / ".venv" / ".installed").stat().st_mtime
    os.utime(repo / "constraints.txt", (stamp - 10, stamp - 10))
    os.utime(repo / "pyproject.toml", (stamp + 10, stamp + 10))
    copy.mkdir()
    warnings = fresh_copy(repo, copy)
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        ".gitignore",
        "constraints.txt",
        "pyproject.toml",
        "tracked.md",
        "untracked.md",
    ]
    assert (copy / ".venv").is_symlink() and (copy / ".venv" / ".installed").is_file() and not (copy / "runs").exists()
    assert len(warnings) == 1 and warnings[0].startswith("pyproject.toml is newer")
    assert (copy / "pyproject.toml").stat().st_mtime <= stamp
    (repo / ".venv" / ".installed").unlink()
    with pytest.raises(RuntimeError, match="make setup"):
        fresh_copy(repo, tmp_path)


def test_list_prints_every_block_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.readme_check import main

    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{block.where}: {f'skip ({block.skip})' if block.skip else _stated(block)}" for block in BLOCKS]
    with pytest.raises(SystemExit):
        main(["--factor", "0.5"])


def _stated(block: Block) -> str:
    seconds = block.seconds or 0
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
