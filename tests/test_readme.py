"""The README's command blocks still match the code: every command's settings parse, every file it reads exists.

Each ```bash block is read as a shell would (continuation lines joined, ``NAME=value`` lines substituted, comments
dropped). A ``transferability`` command is parsed by the CLI itself (``--print_config``: every key and type checked,
nothing trained), a study's by the study parser and ``Study``'s own checks, the other scripts' by their parsers;
``make`` targets must exist in the Makefile. Running the blocks and timing them is CI's smoke step (``make demo``)
and a person's before a stop; this test catches the drift between a flag in the README and the code.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI.s args parameter")

ROOT = Path(__file__).resolve().parents[1]
BIN = ".venv/bin/"


def commands(text: str) -> list[list[str]]:
    """The commands of the README's bash blocks, in order, each as its words (variables substituted)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        variables: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if len(words) == 1 and re.fullmatch(r"[A-Z]+=\S+", words[0]):
                name, _, value = words[0].partition("=")
                variables[name] = value
                continue
            found.append([re.sub(r"\$([A-Z]+)", lambda m: variables[m.group(1)], word) for word in words])
    return found


README_COMMANDS = commands((ROOT / "README.md").read_text())


def test_the_readme_has_commands_of_every_script() -> None:
    """The parse below sees the README's commands (a changed block format would leave it checking nothing)."""
    programs = {words[0].removeprefix(BIN) for words in README_COMMANDS}
    assert {"make", "transferability", "transferability-study", "transferability-compare",
            "transferability-prepare-imagenet"} <= programs


def test_make_targets_exist() -> None:
    """Each ``make X`` of the README is a target of the Makefile."""
    targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M))
    for words in README_COMMANDS:
        if words[0] == "make":
            assert set(words[1:]) <= targets, words


def test_cli_commands_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``transferability`` command parses with the CLI's own parser; a config one command prints
    (``--print_config > my.yaml``) is the one the next commands read."""
    from experiments.cli import main

    monkeypatch.chdir(ROOT)
    printed: dict[str, Path] = {}
    for words in README_COMMANDS:
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

    monkeypatch.chdir(ROOT)
    for words in README_COMMANDS:
        program, args = words[0].removeprefix(BIN), words[1:]
        if program == "transferability-study":
            parser = build_parser()
            study_from_config(parser, parser.parse_args(args))
        elif program == "transferability-compare":
            tables = [arg for arg in args if arg.endswith(".csv")]
            assert tables and all((ROOT / table).is_file() for table in tables), words
        elif program == "transferability-prepare-imagenet":
            prepare_parser().parse_args(args)
