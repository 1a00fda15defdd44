"""What `pglab certs` shows: every certificate of the lab (the CA bundle, each node's, pglab's
own client certificate) with the services that present it, its names, its expiry, and whether
those services serve it right now."""

from __future__ import annotations

from typing import Any

from pglab.errors import PglabError
from pglab.lab import Lab
from pglab.tls import certs, endpoints


def rows(lab: Lab) -> list[dict[str, Any]]:
    """One row per certificate: name, services, subject, sans, not_after, days_left, serial,
    served ("yes", "old: SERIAL", "unreachable: ...", or "" where nothing serves it)."""
    if not lab.topology.tls:
        raise PglabError(f"lab {lab.topology.name} runs without TLS (tls: false in {lab.topology_file}); "
                         "it has no certificates")
    inventory = lab.certificates().inventory()
    if not inventory:
        raise PglabError(f"lab {lab.topology.name} has no certificates yet ({lab.layout.tls}); run `pglab up`")
    serving: dict[str, list[tuple[str, str]]] = {}  # node -> [(service, what it serves)]
    for endpoint, cert in endpoints.served(lab):
        serving.setdefault(endpoint.node, []).append((endpoint.service, _served_text(cert)))
    current = lab.certificates().current_ca()
    out = []
    for entry in inventory:
        if entry.name == "ca":
            services = "signs" if current and current[0].serial_number == entry.serial else "trusted, retiring"
            served = ""
        elif entry.name == certs.CLIENT:
            services, served = "client of the DCS (pglab)", ""
        else:
            found = serving.get(entry.name, [])
            services = ", ".join(s for s, _ in found) or "CA bundle only"
            served = ", ".join(sorted({("yes" if text == f"{entry.serial:x}" else text) for _, text in found}))
        out.append({
            "name": entry.name, "services": services, "subject": entry.subject, "sans": entry.sans,
            "not_after": entry.not_after.isoformat(timespec="seconds"), "days_left": round(entry.days_left(), 1),
            "serial": f"{entry.serial:x}", "served": served,
        })
    return out


def _served_text(cert: Any) -> str:
    if isinstance(cert, Exception):
        return f"unreachable: {type(cert).__name__}"
    return f"{cert.serial_number:x}"
