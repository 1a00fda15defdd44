"""`pglab report` from made-up drill JSON lines and a verify run: the page holds its table, its
anomalies and a timeline inline, and a real browser (Debian's headless Chromium) renders it."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pglab.drills import report, timeline
from pglab.drills.result import png_name, write_json_line
from tests.unit.test_drill import _result

CHROMIUM = shutil.which("chromium-headless-shell")
# No first-run work, no component updates, no background requests: the page must need nothing.
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1200,1800"]


def _lab_files(tmp_path: Path) -> tuple[Path, Path]:
    drills = tmp_path / "drills"
    ok = _result("crash", (19.0, 0))
    timeline.write_png(ok, drills / png_name(ok))
    write_json_line(ok, drills)
    bad = json.loads(json.dumps(ok.as_json()))
    del bad["timeline"]  # an older line: the name is derived, and no such PNG exists
    bad.update(run=2, ok=False, workload="bank", clients=16, readers=4, replication="async",
               checks={"lost": 0, "split_brain": 0, "bank_total": 1, "bank_ledger": 0},
               anomalies=[{"check": "bank_total", "what": "1 read(s) through the read endpoint saw a total other "
                           "than 128000 over 128 accounts", "evidence": {"count": 1, "reads": [{"sum": 127990}]}}])
    with (drills / "drills.jsonl").open("a") as f:
        f.write(json.dumps(bad) + "\n")
        f.write("{not json: a drill killed while writing\n")
    verify = tmp_path / "verify.json"
    verify.write_text(json.dumps({"passed": True, "seconds": 61.2, "results": [
        {"check": "services", "name": "postgres listens <script>", "node": "pg1", "outcome": "passed",
         "seconds": 0.4, "message": ""}]}))
    return drills, verify


def test_the_page_holds_the_summary_the_anomalies_a_timeline_and_verify(tmp_path: Path) -> None:
    drills, verify = _lab_files(tmp_path)
    page = report.build("itest", drills, verify)
    assert "<table id='summary'>" in page and "<table id='verify'>" in page
    assert "crash" in page and "bank, 16 clients, 4 readers, async" in page
    assert "bank_total 1" in page and "127990" in page  # the anomaly with its evidence
    assert page.count("class='timeline'") == 1 and "data:image/png;base64," in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # text is escaped
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing from the network


def test_nothing_to_report_is_an_error_naming_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(report.PglabError, match="pglab drill KIND"):
        report.build("itest", tmp_path / "drills", tmp_path / "verify.json")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium-headless-shell is not installed (./bootstrap test installs it)")
def test_chromium_renders_the_table_and_a_timeline(tmp_path: Path) -> None:
    from PIL import Image  # matplotlib's own dependency

    drills, verify = _lab_files(tmp_path)
    page = report.write("itest", drills, verify, tmp_path / "report.html")
    assert CHROMIUM is not None
    url = page.resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *BROWSER_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="summary"' in dom.stdout and 'class="timeline"' in dom.stdout and 'id="verify"' in dom.stdout
    shot = tmp_path / "report.png"
    done = subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--screenshot={shot}", url], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = Image.open(io.BytesIO(shot.read_bytes()))
    assert image.format == "PNG" and image.size == (1200, 1800)
    colors = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50  # text, table rules, green and red dots: not a blank page
    # the timeline's green dots made it to the screen
    assert any(g > 100 and r < 100 and b < 100 for _, (r, g, b) in colors)


def test_the_page_shows_what_every_drill_measured_around_the_fault(tmp_path: Path) -> None:
    result = _result("crash", (19.0, 0))
    result.measures.commit_latency_ms = {"before": {"p50": 2.1, "p99": 9.5, "n": 400}, "during": None,
                                         "after": {"p50": 2.4, "p99": 12.0, "n": 300}}
    result.measures.lag_worst = {"pg2": {"flush_bytes": 0, "replay_bytes": 8192, "replay_lag_s": 0.01, "at_s": -1.0}}
    result.measures.healthy_again_s = 41.5
    result.measures.stack_said = {"node": "pg2", "service": "patroni",
                                  "lines": ["INFO: promoted self to leader by acquiring session lock"]}
    drills = tmp_path / "drills"
    timeline.write_png(result, drills / png_name(result))  # the figures under the plot
    write_json_line(result, drills)
    page = report.build("itest", drills, None)
    table = page[page.index("id='measured'"):]
    assert "2.1 / 9.5" in table and "2.4 / 12" in table and "pg2 8192" in table and "41.5" in table
    assert "promoted self to leader by acquiring session lock" in table
