"""The console's handling of stage output (progress frames) when piped, colour modes, and the
end-of-run summary table. The terminal side is tested in a real pty (tests/integration/test_terminal.py)."""

from __future__ import annotations

import io

from orchestra.app.console import Console, use_color
from orchestra.app.summary import MAX_ROWS, StageSummary, table


def test_piped_output_drops_frames_and_prints_the_line_a_bar_ends_with():
    stream = io.StringIO()
    console = Console(stream)
    console.stage_running("train")
    for frame in (" 10%|#", " 50%|#####", "100%|##########"):
        console.stage_output("train", frame + "\r")
    assert stream.getvalue() == "" and console.last_output["train"] == "100%|##########"
    console.stage_output("train", "100%|##########|")
    console.stage_output("train", "a\rb\rc")  # frames inside one line: the last one
    assert stream.getvalue() == "[train] 100%|##########|\n[train] c\n"
    console.stage_done("train")
    assert "train" not in console.last_output


def test_color_modes(monkeypatch):
    piped = io.StringIO()
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert (use_color("auto", piped), use_color("always", piped), use_color("never", piped)) == (False, True, False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color("always", piped) is True and use_color("auto", piped) is False
    assert Console(piped, color="always").color("ran", "FINISHED") == "\x1b[32mran\x1b[0m"
    assert Console(piped).color("ran", "FINISHED") == "ran"


def test_summary_table_rows_and_cap():
    rows = [StageSummary("prepare", "LOADED"), StageSummary("train", "FINISHED", 1.5, {"loss": 0.123456, "acc": 0.9}),
            StageSummary("evaluate", "FAILED", 0.25, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}),
            StageSummary("publish", "SKIPPED")]
    lines = table(rows, lambda text, status: text, "f" * 32)
    assert [line.split()[:3] for line in lines] == [["stage", "status", "time"], ["prepare", "loaded", "—"],
                                                    ["train", "ran", "1.50s"], ["evaluate", "failed", "0.25s"],
                                                    ["publish", "skipped", "—"]]
    assert lines[2].endswith("loss=0.1235 acc=0.9") and lines[3].endswith("a=1 b=2 c=3 (+1)")
    many = table([StageSummary(f"s{i}", "FINISHED", 0.1) for i in range(MAX_ROWS + 5)], lambda t, s: t, "ab" * 16)
    assert len(many) == MAX_ROWS + 2 and many[-1] == "  … 5 more stage(s): orchestra runs show abababab"
