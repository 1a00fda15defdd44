"""Certificate rotation on the session's real lab, under the write probe: nothing lost, and every
service serves its new certificate afterwards; `pglab certs` says so."""

from __future__ import annotations

import json
import subprocess
import sys

from pglab.drills import frame, kinds
from pglab.lab import Lab
from pglab.tls import certs, endpoints


def test_certs_rotate_under_load_loses_nothing_and_nodes_serve_the_new_certificates(lab: Lab) -> None:
    before = {e.what: c.serial_number for e, c in endpoints.served(lab) if not isinstance(c, Exception)}
    result = frame.run(lab, kinds.make("certs"), timeout=120)
    assert result.ok, result.problem
    assert result.tally.lost == []
    assert endpoints.stale(lab) == []
    after = {e.what: c.serial_number for e, c in endpoints.served(lab) if not isinstance(c, Exception)}
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
    out = subprocess.run([sys.executable, "-m", "pglab.cli", "certs", "--json", "-f", str(lab.topology_file)],
                         check=True, capture_output=True, text=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["pg1"]["served"] == "yes" and rows["dcs"]["served"] == "yes"
    assert all(r["days_left"] > certs.WARN_DAYS for r in rows.values())
