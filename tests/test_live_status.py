"""Progress lines: redrawn in place on a terminal, one plain line per step in a CI log."""

from __future__ import annotations

import io

import pytest

from mlgen import live_status
from mlgen.live_status import LiveStatus


def test_a_log_gets_one_line_per_finished_item_and_announced_steps() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = LiveStatus(out=out, err=err, interactive=False)
    status.begin("a", "hadolint")
    status.begin("b", "environment 1a2b: installing 17 requirements", announce=True)
    status.end("a", "pass  hadolint  Dockerfile: no findings")
    status.end("b")
    status.note("1 passed, 0 failed")
    assert out.getvalue().splitlines() == [
        "pass  hadolint  Dockerfile: no findings",
        "1 passed, 0 failed",
    ]
    assert err.getvalue().splitlines() == ["environment 1a2b: installing 17 requirements"]
    assert "\x1b" not in out.getvalue() + err.getvalue()


def test_a_terminal_gets_a_live_line_per_running_item() -> None:
    stream = io.StringIO()
    status = LiveStatus(out=stream, err=stream, interactive=True, tick=60)
    status.begin("a", "checkov-kubernetes")
    status.begin("b", "feast-apply")
    assert "checkov-kubernetes (0s)" in stream.getvalue()
    assert stream.getvalue().rstrip("\n").splitlines()[-1].endswith("feast-apply (0s)")
    status.end("a", "pass  checkov-kubernetes")
    screen = stream.getvalue()
    # the two live lines are erased, the finished line printed, the one still running redrawn
    tail = screen[screen.rindex("\x1b[2F\x1b[J") :]
    assert tail.splitlines()[0].endswith("pass  checkov-kubernetes")
    assert tail.splitlines()[1].endswith("feast-apply (0s)")
    status.end("b", "pass  feast-apply")
    assert stream.getvalue().endswith("\x1b[1F\x1b[Jpass  feast-apply\n")


def test_ci_is_never_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert live_status.is_interactive(Terminal())
    monkeypatch.setenv("CI", "true")
    assert not live_status.is_interactive(Terminal())


def test_step_reports_failure_and_reraises(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(live_status, "_current", LiveStatus(out=out, err=out, interactive=False))
    with pytest.raises(RuntimeError), live_status.step("building"):
        raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert lines[0] == "building" and lines[1].startswith("building: failed after ")
