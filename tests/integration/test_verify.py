"""Issue 3's acceptance: `pglab verify` passes on a healthy lab, writes JUnit XML listing its
checks (TLS among them), and fails, naming the node, when HAProxy or a replica is down. The session lab is
healthy again when these tests end."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from pglab import operations
from pglab.checks import drop_rows
from pglab.drills.report import build as build_report
from pglab.lab import Lab
from pglab.providers.local import program_name
from pglab.verify import run_verify

# The pooler is on by default: its checks run between replication and routing, and after the switchover.
CHECKS = ["services", "tls", "replication", "pooler", "routing", "switchover", "switchover pooler", "manual failover",
          "node loss", "config change", "backups", "final"]
CHECK_FILES = ["test_01_services", "test_01_tls", "test_01_tls_patroni", "test_02_replication", "test_03_pooler",
               "test_03_routing", "test_04_switchover", "test_04_switchover_pooler",
               "test_05_manual_failover", "test_06_node_loss", "test_07_config_change", "test_08_backups",
               "test_08_final"]


def test_verify_passes_on_a_healthy_lab_and_writes_junit_xml(lab: Lab, tmp_path: Path) -> None:
    xml = tmp_path / "verify.xml"
    report = run_verify(lab.topology_file, xml, None, False)
    failures = [f"{r.check}/{r.name}/{r.node}: {r.message}" for r in report.failures]
    assert report.passed, failures
    assert report.checks == CHECKS
    assert {r.outcome for r in report.results} == {"passed"}
    names = {r.name for r in report.results}
    assert {"pooler answers over tls only", "pooled and direct writes agree after the switchover"} <= names
    assert {r.node for r in report.results if r.node} == {n.name for n in lab.topology.nodes}
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0" and suite.get("errors") == "0" and suite.get("skipped") == "0"
    cases = suite.findall("testcase")
    assert len(cases) == len(report.results)
    assert sorted({c.get("classname") for c in cases}) == CHECK_FILES
    lab.wait_healthy(60)  # raises, saying why, when the lab does not become healthy again
    # the run is kept beside the lab, and `pglab report` shows it
    kept = json.loads(lab.layout.last_verify.read_text())
    assert kept["passed"] and len(kept["results"]) == len(report.results) and kept["finished"]
    page = build_report(lab.topology.name, tmp_path / "no-drills", lab.layout.last_verify)
    assert "<table id='verify'>" in page and page.count("class='ok'>passed</td>") == len(report.results)


def test_verify_names_haproxy_when_it_is_stopped(lab: Lab) -> None:
    haproxy = lab.topology.with_role("haproxy")[0].name
    rpc = lab.provider._rpc()  # type: ignore[attr-defined]
    rpc.supervisor.stopProcess(program_name(haproxy, "haproxy"))
    try:
        report = run_verify(lab.topology_file, None, "services or routing", True)
    finally:
        rpc.supervisor.startProcess(program_name(haproxy, "haproxy"))
        lab.wait_healthy(60)
    assert not report.passed
    assert {r.check for r in report.results} == {"services", "routing"}
    failed = report.failures
    assert {r.check for r in failed} == {"services", "routing"}, [(r.check, r.name) for r in failed]
    assert all(r.message.startswith(f"{haproxy}: ") for r in failed), [r.message for r in failed]
    assert {r.name for r in failed if r.check == "services"} == {"haproxy listens", "haproxy service runs"}
    assert all(r.outcome == "passed" for r in report.results if r.node and r.node != haproxy)


def test_verify_names_a_stopped_replica(lab: Lab) -> None:
    leader = lab.stack().leader()
    replica = sorted(n.name for n in lab.topology.with_role("postgres") if n.name != leader)[0]
    operations.stop_node(lab, replica)
    try:
        report = run_verify(lab.topology_file, None, "replication", True)
    finally:
        operations.start_node(lab, replica)
        drop_rows(lab, lab.superuser_password())
    assert not report.passed
    by_node = {r.node: r for r in report.results if r.name == "member leads or streams"}
    assert by_node[replica].outcome == "failed"
    assert by_node[replica].message.startswith(f"{replica} is not streaming"), by_node[replica].message
    assert all(r.outcome == "passed" for n, r in by_node.items() if n != replica)
    rows = next(r for r in report.results if r.name == "rows written through the writes endpoint reach every replica")
    assert rows.outcome == "failed" and replica in rows.message
    lab.wait_healthy(60)
