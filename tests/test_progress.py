"""Progress reporting with and without a terminal."""
import io

from softprompt.progress import ProgressReporter, format_duration


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_interval_when_not_a_terminal():
    out = io.StringIO()
    with ProgressReporter("train", 4, stream=out, every_seconds=0.0) as reporter:
        reporter.advance(1, loss=0.5)
        reporter.advance(1, loss=0.25)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[train] 1/4 steps (25%) loss 0.5000 | elapsed ")
    assert lines[1].startswith("[train] 2/4 steps (50%) loss 0.2500 | elapsed ")
    assert "| eta " in lines[1]
    assert len(lines) == 3  # and a closing line


def test_no_plain_line_between_intervals_but_one_at_the_end():
    out = io.StringIO()
    with ProgressReporter("eval", 100, unit="examples", stream=out, every_seconds=3600) as reporter:
        for _ in range(100):
            reporter.advance(1)
    assert out.getvalue().splitlines() == [reporter.line()]
    assert reporter.line().startswith("[eval] 100/100 examples (100%) | elapsed ")


def test_disabled_reporter_prints_nothing():
    out = io.StringIO()
    with ProgressReporter("train", 3, stream=out, enabled=False, every_seconds=0.0) as reporter:
        reporter.advance(3)
        reporter.note("warning: x")
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar_and_child_bars_share_it():
    out = FakeTerminal()
    with ProgressReporter("train", 2, stream=out) as reporter:
        with reporter.child("eval", 3, "examples") as child:
            assert child._bar is reporter._bar  # one live display: rich refuses two
            child.advance(3)
        reporter.advance(2, loss=0.1)
        reporter.note("warning: something")
    text = out.getvalue()
    assert "warning: something" in text
    assert "train" in text


def test_eta_counts_only_the_work_done_in_this_process():
    reporter = ProgressReporter("train", 100, completed=50, stream=io.StringIO())
    assert reporter.eta_seconds() is None  # a resumed run has no rate yet


def test_format_duration():
    assert [format_duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]
