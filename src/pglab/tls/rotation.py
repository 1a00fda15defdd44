"""`pglab certs rotate`: new certificates for a running lab, taken up by every service without
a cluster restart, while clients keep writing.

Plain rotation: new keys and certificates from the lab's CA, delivered and reloaded
(playbooks/certs.yml). With a new CA, three rounds, so that no client ever meets a certificate it
does not trust: (1) every node trusts the new CA beside the old one; (2) every node gets a
certificate of the new CA; (3) once every service serves its new certificate, the old CA is
retired from every node's bundle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pglab import ansible, paths
from pglab.errors import PglabError
from pglab.lab import EventSink, Lab, Step, ignore_event
from pglab.operations import OpResult, wait_until
from pglab.tls import endpoints


@dataclass(frozen=True)
class Round:
    what: str
    seconds: float
    changed: int


def rotate(lab: Lab, new_ca: bool = False, timeout: float = 60.0, on_event: EventSink = ignore_event) -> OpResult:
    """Rotate the lab's certificates (and, with ``new_ca``, its CA); returns once every service
    serves its new certificate (and the old CA is retired)."""
    if not lab.topology.tls:
        raise PglabError(f"lab {lab.topology.name} runs without TLS (tls: false in {lab.topology_file}); "
                         "there is no certificate to rotate")
    lab_certs = lab.certificates()
    if lab_certs.current_ca() is None:
        raise PglabError(f"lab {lab.topology.name} has no CA yet ({lab.layout.tls}); run `pglab up` first")
    started = time.monotonic()
    rounds: list[Round] = []
    old_cas = [c.serial for c in lab_certs.inventory() if c.name == "ca"]
    if new_ca:
        lab_certs.add_new_ca()
        rounds.append(_deliver(lab, "every node trusts the new CA beside the old one", on_event))
    lab_certs.reissue()
    rounds.append(_deliver(lab, "new certificates delivered, services reloaded", on_event))
    waited = wait_until(lambda: _all_serve_new(lab), timeout, "every service to serve its new certificate",
                        on_event)
    retired: list[str] = []
    if new_ca:
        retired = [f"{c.serial:x}" for c in lab_certs.retire_old_cas()]
        rounds.append(_deliver(lab, "the old CA retired from every node", on_event))
    seconds = time.monotonic() - started
    current = lab_certs.current_ca()
    assert current is not None
    summary = (f"rotated the certificates of {len(lab_certs.names())} nodes and clients"
               + (f" and the CA ({len(retired)} old CA retired)" if new_ca else "")
               + f" in {seconds:.1f} s; every service serves its new certificate ({waited:.1f} s after reload)")
    return OpResult("certs rotate", seconds, summary, {
        "new_ca": new_ca, "ca_serial": f"{current[0].serial_number:x}", "old_ca_serials": [f"{s:x}" for s in old_cas],
        "retired_ca_serials": retired,
        "rounds": [{"what": r.what, "seconds": round(r.seconds, 2), "changed": r.changed} for r in rounds],
    })


def _deliver(lab: Lab, what: str, on_event: EventSink) -> Round:
    on_event(Step(what.split(",")[0]))
    started = time.monotonic()
    result = ansible.run_playbook(paths.playbook("certs.yml"), lab.inventory, lab.layout.ansible, on_event)
    if not result.succeeded:
        raise PglabError(ansible.failure_text("Delivering the certificates", result))
    return Round(what, time.monotonic() - started, result.changed)


def _all_serve_new(lab: Lab) -> tuple[bool, str]:
    stale = endpoints.stale(lab)
    return not stale, "; ".join(stale[:3])

