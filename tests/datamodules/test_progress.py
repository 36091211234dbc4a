"""Progress of a long loop: plain lines in a log (no carriage returns), tqdm's bar on a terminal."""

from __future__ import annotations

import io
import sys

import pytest

from datamodules.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_plain_line_every_tenth_and_no_carriage_return(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert list(progress(iter(range(100)), "val images", "img", total=100)) == list(range(100))
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(" img")[0] for line in lines] == [f"val images: {k}/100" for k in range(10, 101, 10)]


def test_a_short_or_unsized_loop_says_where_it_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert list(progress([1, 2, 3], "train classes", "class")) == [1, 2, 3]  # total from len: every item a tenth
    assert log.getvalue().splitlines()[-1].startswith("train classes: 3/3 class in ")
    log.truncate(0)
    log.seek(0)
    assert list(progress((x for x in "ab"), "decode", "img")) == ["a", "b"]
    assert log.getvalue().startswith("decode: 2 img in ") and len(log.getvalue().splitlines()) == 1
    log.truncate(0)
    log.seek(0)
    list(progress(iter(range(4)), "decode", "img", total=10))  # fewer than announced: the last count is said
    assert log.getvalue().splitlines()[-1].startswith("decode: 4/10 img")


def test_a_terminal_gets_tqdms_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress(range(5), "mean image", "batch")) == list(range(5))
    assert "\r" in terminal.getvalue() and "5/5" in terminal.getvalue()
