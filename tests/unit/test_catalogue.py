"""bench/catalogue.py's pure parts: a cell from recorded drills, the table, the docs' markers, the
results file and --resume. No lab is touched."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import _catalogue_results as results  # noqa: E402
from _catalogue_cells import NOT_MEASURED, outcome, refusal, render  # noqa: E402
from _catalogue_plan import CONFIGS, FAULTS, plan, remaining  # noqa: E402
from _catalogue_table import BEGIN, END, block, footer, replace_between_markers, table  # noqa: E402

NETEM = ("error: drill latency: this kernel (5.10.0) has no netem (sch_netem), the queueing discipline that "
         "delays packets; run the latency drill where the kernel has it (the VM lab, most distributions' kernels)")


def drill(kind: str, **overrides: Any) -> dict[str, Any]:
    """A drill's JSON line as `pglab drill KIND --json` prints it (the keys a cell reads)."""
    line: dict[str, Any] = {
        "kind": kind, "run": 1, "started": "2026-12-06T09:10:00+00:00", "node": "pg1", "old_leader": "pg1",
        "new_leader": "pg1", "recovered": True, "ok": True, "problem": None, "unavailable_s": 0.4, "lost": 0,
        "failed_committed": 0, "healthy_again_s": None,
        "commit_latency_ms": {"before": {"p50": 1.2, "p99": 3.0, "n": 200}, "during": {"p50": 2.0, "p99": 9.0, "n": 50},
                              "after": None},
    }
    line.update(overrides)
    return line


def record(kind: str, config: str = "patroni", run: int = 1, code: int | None = 0, aftermath: str = "healthy",
           message: str | None = None, **line: Any) -> dict[str, Any]:
    """A line of the results file, as bench/catalogue.py appends it."""
    return {"type": "cell", "config": config, "kind": kind, "run": run, "command": f"pglab drill {kind}",
            "started": "2026-12-06T09:10:00+00:00", "seconds": 60.0, "exit": code, "timed_out": False,
            "message": message, "drill": None if message is not None else drill(kind, **line),
            "aftermath": aftermath}


def test_a_crash_cell_says_failover_and_the_figures() -> None:
    cell = render([record("crash", new_leader="pg2", unavailable_s=20.15, healthy_again_s=31.04)])
    assert cell == "failover, down 20.1 s, healthy again 31.0 s"


def test_a_postgres_kill_cell_says_what_the_stack_did_and_how_fast() -> None:
    cell = render([record("postgres-kill", outcome="restarted in place", back_after_s=3.34, unavailable_s=2.0)])
    assert cell == "restarted in place 3.3 s, down 2.0 s"


def test_a_fault_the_machine_cannot_produce_is_a_short_exit_2_cell() -> None:
    assert render([record("latency", code=2, message=NETEM)]) == "exit 2: needs netem (missing here)"
    assert refusal("error: cpu-starve needs the cpu cgroup controller (cgroup v2 lists none)") == (
        "needs the cpu cgroup (missing here)")
    long = refusal("error: drill pgdata-lost: something nobody foresaw, said at great length and then some more")
    assert long.startswith("something nobody foresaw") and long.endswith("\u2026") and len(long) <= 48


def test_a_slowing_fault_gives_the_commit_p50_before_and_during() -> None:
    latency = {"before": {"p50_ms": 1.24, "p99_ms": 3.0, "acknowledged": 300, "failed": 0},
               "during": {"p50_ms": 35.0, "p99_ms": 90.0, "acknowledged": 80, "failed": 2},
               "after": {"p50_ms": 1.3, "p99_ms": 3.1, "acknowledged": 100, "failed": 0}}
    cell = render([record("cpu-starve", commit_latency=latency)])
    assert cell == "no failover, down 0.4 s, p50 1.2 -> 35.0 ms"
    # a fault that breaks rather than slows says nothing of the p50
    assert "p50" not in render([record("crash")])


def test_acknowledged_writes_lost_stand_out_and_a_failure_says_why() -> None:
    lost = render([record("partition", code=1, new_leader="pg2", lost=3, ok=False)])
    assert "**3 acked lost**" in lost and "exit 1" not in lost
    # the writes a client beside the cut-off leader had acknowledged count too
    beside = render([record("partition", code=1, new_leader="pg2", lost=0, checks={"lost": 339, "split_brain": 0},
                            cut_off_side={"acknowledged_after_fault": 343, "lost": 339}, ok=False)])
    assert beside == "failover, down 0.4 s, **339 acked lost** (on the cut-off side)"
    two = render([record("partition", code=1, new_leader="pg2", checks={"lost": 0, "split_brain": 2}, ok=False)])
    assert two.endswith("exit 1: split_brain 2")
    stuck = render([record("hang", code=1, recovered=False, new_leader=None, ok=False)])
    assert stuck.startswith("no leader at the end") and stuck.endswith("exit 1: not recovered")
    said = render([record("pgdata-lost", code=1, recovered=False, ok=False,
                          problem="the pgdata-lost did not complete: [Errno 39] Directory not empty: '/var/lib/x'")])
    assert said.endswith("exit 1: [Errno 39] Directory not empty: '/var/lib/x'")


def test_the_stack_faults_say_their_own_outcome() -> None:
    assert render([record("dcs-loss", leader_kept_writes=True, unavailable_s=0.1)]).startswith(
        "leader kept writing, no failover")
    assert render([record("dcs-loss", leader_kept_writes=False, demoted_after_s=5.43, unavailable_s=25.0)]) == (
        "no failover, leader demoted after 5.4 s, down 25.0 s")
    assert render([record("pgdata-lost", rebuilt_after_s=5.0, rebuilt_by="the stack", unavailable_s=0.0)]) == (
        "rebuilt by the stack after 5.0 s, down 0.0 s")
    assert render([record("disk-full", first_failure_s=0.52, unavailable_s=20.3)]) == (
        "no failover, writes refused after 0.5 s, down 20.3 s")
    memory = render([record("memory", oom_kills=1, postmaster="stayed up and reinitialized every backend "
                            "(crash recovery)", unavailable_s=1.9)])
    assert memory == "OOM kill, crash recovery, no failover, down 1.9 s"


def test_several_runs_give_the_lowest_and_highest_figure() -> None:
    runs = [record("crash", run=n, new_leader="pg2", unavailable_s=s) for n, s in ((1, 21.0), (2, 19.84), (3, 20.2))]
    assert render(runs) == "failover, down 19.8-21.0 s"
    mixed = [record("cpu-starve", run=1, new_leader="pg2"), record("cpu-starve", run=2),
             record("cpu-starve", run=3)]
    assert render(mixed).startswith("no failover 2/3, failover 1/3")


def test_a_cell_that_left_the_lab_broken_says_so() -> None:
    assert render([record("crash", aftermath="up")]).endswith("needed `pglab up` after")
    assert render([record("crash", aftermath="recreated")]).endswith("left the lab broken (recreated)")
    assert outcome(record("crash", aftermath="up")).aftermath == "up"


def test_cells_fit_a_markdown_table() -> None:
    worst = render([record("partition", code=1, new_leader="pg2", lost=1234, unavailable_s=123.45,
                           healthy_again_s=456.7, aftermath="recreated",
                           problem="a | pipe and a very long problem " * 5, ok=False)])
    assert "|" not in worst and "\n" not in worst and len(worst) <= 120
    assert render([]) == NOT_MEASURED


def test_the_table_has_a_row_per_fault_and_a_column_per_configuration() -> None:
    records = [record("crash", config="patroni", new_leader="pg2", unavailable_s=20.0),
               record("latency", config="pg_auto_failover", code=2, message=NETEM)]
    lines = table(records, CONFIGS, FAULTS).splitlines()
    assert len(lines) == 2 + len(FAULTS)
    assert all(line.count(" | ") == len(CONFIGS) for line in lines if not line.startswith("|---"))
    assert [c.title for c in CONFIGS] == [t.strip() for t in lines[0].strip("|").split("|")[1:]]
    row = {line.split(" | ")[0].strip("| `"): line.split(" | ")[1:] for line in lines[2:]}
    assert row["crash"][0] == "failover, down 20.0 s"
    assert row["latency --delay 50 --for 20"][-1].startswith("exit 2: needs netem")
    # failsafe_mode answers only dcs-loss; a cell not measured yet says so
    failsafe = [c.name for c in CONFIGS].index("patroni-failsafe")
    assert row["crash"][failsafe] == "-" and row["dcs-loss"][failsafe] == NOT_MEASURED


def test_the_line_under_the_table_gives_date_machine_load_and_time() -> None:
    machine = {"cores": 2, "memory_gb": 22.9, "kernel": "5.10.240"}
    sittings = [{"type": "sitting", "started": "2026-12-06T09:00:00+00:00", "ended": "2026-12-06T09:30:00+00:00",
                 "seconds": 1800.0, "load_start": 0.52, "load_end": 2.0, "machine": machine}]
    line = footer([record("crash")], sittings)
    assert line.startswith("Measured 2026-12-06 on the local provider (2 cores, 22.9 GB, kernel 5.10.240")
    assert "load average 0.5 at the start, 2.0 at the end" in line and "1 drills, 30 min in all" in line
    # a sitting cut short lasted until its last cell ended; the next one is counted apart
    cut = {**sittings[0], "ended": None, "seconds": None, "load_end": None}
    later = {**sittings[0], "started": "2026-12-06T11:00:00+00:00", "seconds": 600.0}
    cells = [record("crash"), {**record("hang"), "started": "2026-12-06T09:20:00+00:00", "seconds": 120.0},
             {**record("memory"), "started": "2026-12-06T11:01:00+00:00"}]
    assert "32 min in all over 2 sittings" in footer(cells, [cut, later])
    assert footer([], []).startswith("Not measured yet")


def test_the_markers_keep_their_place_and_what_lies_outside_them() -> None:
    page = f"# Drills\n\nBefore.\n\n{BEGIN}\nold table\n{END}\n\nAfter.\n"
    once = replace_between_markers(page, "new table\n")
    assert once == f"# Drills\n\nBefore.\n\n{BEGIN}\nnew table\n{END}\n\nAfter.\n"
    assert replace_between_markers(once, "new table") == once
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("# no markers\n", "table")


def test_the_docs_page_has_the_markers() -> None:
    page = (REPO / "docs" / "drills.md").read_text()
    assert page.index(BEGIN) < page.index(END)
    assert "## What happens when…" in page
    # between them: what the script writes, before anything was measured or after
    between = page[page.index(BEGIN) + len(BEGIN):page.index(END)].strip()
    assert between == block([], [], CONFIGS, FAULTS) or (
        between.startswith("| what happens when… |") and between.splitlines()[-1].startswith("Measured "))


def test_resume_skips_the_cells_in_the_results_file(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.jsonl"
    results.append(path, {"type": "sitting", "started": "2026-12-06T09:00:00+00:00", "ended": None})
    results.append(path, record("crash"))
    results.append(path, record("latency", code=2, message=NETEM))
    with path.open("a") as f:
        f.write(json.dumps(record("hang"))[:40])  # the line being written when the run was killed
    records = results.read(path)
    assert results.done(records) == {("patroni", "crash", 1), ("patroni", "latency", 1)}
    cells = plan("patroni", "latency,crash,hang", count=1)
    assert [c.key for c in remaining(cells, results.done(records))] == [("patroni", "hang", 1)]
    assert len(results.sittings(records)) == 1


def test_the_plan_chooses_configurations_kinds_and_runs() -> None:
    cells = plan("pg_auto_failover,patroni-failsafe", "crash,dcs-loss", count=2)
    # the catalogue's order; failsafe_mode only where it matters
    assert [c.key for c in cells] == [("patroni-failsafe", "dcs-loss", 1), ("patroni-failsafe", "dcs-loss", 2),
                                      ("pg_auto_failover", "dcs-loss", 1), ("pg_auto_failover", "dcs-loss", 2),
                                      ("pg_auto_failover", "crash", 1), ("pg_auto_failover", "crash", 2)]
    with pytest.raises(ValueError, match="unknown fault switchover"):
        plan(None, "switchover")


def test_the_catalogue_covers_every_fault_kind() -> None:
    from pglab.drills import kinds

    not_faults = {"switchover", "failover", "restart", "certs", "certs-ca", "restore"}
    # the pooler is off by default: its kind needs a lab of its own; a site's loss needs a two-site lab
    assert {f.kind for f in FAULTS} == set(kinds.KINDS) - not_faults - {"pooler-kill", "site-loss"}


def test_a_results_file_with_cells_needs_resume(tmp_path: Path) -> None:
    import catalogue

    path = tmp_path / "catalogue.jsonl"
    results.append(path, record("crash"))
    assert catalogue.main(["--results", str(path), "--configs", "patroni", "--kinds", "crash"]) == 2
    assert results.read(path) == [record("crash")]  # nothing run, nothing written


def test_a_signal_ansible_runner_took_still_stops_the_catalogue() -> None:
    import threading

    from catalogue import _asked_to_stop

    def runner_handler() -> Any:  # the shape of ansible-runner's: a closure over the event it sets
        event = threading.Event()

        def handler(_number: int, _frame: Any) -> None:
            event.set()

        return handler

    handler = runner_handler()
    assert not _asked_to_stop(handler) and not _asked_to_stop(None)
    handler(2, None)
    assert _asked_to_stop(handler)
