"""Where a lab's services speak TLS, and which certificate each one really serves right now:
what verify checks against the lab's CA, what `pglab certs` shows beside the files, and how
`pglab certs rotate` knows that every node serves its new certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pglab import certs
from pglab.lab import Lab


@dataclass(frozen=True)
class TlsEndpoint:
    node: str
    service: str  # postgresql, patroni, monitor, etcd, consul
    host: str
    port: int
    postgres: bool  # PostgreSQL's protocol: TLS after an SSLRequest
    client: tuple[Path, Path] | None  # pglab's client certificate, for a server that requires one

    @property
    def what(self) -> str:
        return f"{self.node} {self.service} {self.host}:{self.port}"

    def served(self) -> x509.Certificate:
        """The certificate presented now (raises OSError or ssl.SSLError when none can be had)."""
        return certs.served_certificate(self.host, self.port, postgres=self.postgres, client=self.client)


def endpoints(lab: Lab) -> list[TlsEndpoint]:
    """Every TLS service of the lab: each PostgreSQL (data nodes, the pg_auto_failover monitor),
    Patroni's REST API and the DCS (etcd requires pglab's client certificate)."""
    topo, ports = lab.topology, lab.topology.ports
    client = (certs.cert_path(lab.layout.tls, certs.CLIENT), certs.key_path(lab.layout.tls, certs.CLIENT))
    found: list[TlsEndpoint] = []
    for node in topo.with_role("postgres"):
        found.append(TlsEndpoint(node.name, "postgresql", lab.address(node.name), ports.postgres, True, None))
        if topo.stack == "patroni":
            found.append(TlsEndpoint(node.name, "patroni", lab.address(node.name), ports.patroni, False, None))
    for node in topo.with_role("monitor"):
        found.append(TlsEndpoint(node.name, "monitor", lab.address(node.name), ports.monitor, True, None))
    if topo.stack == "patroni":
        for node in topo.with_role("dcs"):
            port = ports.etcd if topo.dcs == "etcd" else ports.consul
            found.append(TlsEndpoint(node.name, topo.dcs, lab.address(node.name), port, False, client))
    return found


def served(lab: Lab) -> list[tuple[TlsEndpoint, x509.Certificate | Exception]]:
    """Each endpoint with the certificate it serves, or the error met asking for it."""
    out: list[tuple[TlsEndpoint, x509.Certificate | Exception]] = []
    for endpoint in endpoints(lab):
        try:
            out.append((endpoint, endpoint.served()))
        except (OSError, ValueError) as exc:
            out.append((endpoint, exc))
    return out


def stale(lab: Lab) -> list[str]:
    """Endpoints that do not serve the node's certificate as the lab directory has it now (an
    older one, or none), one phrase each; empty when every node serves its current certificate."""
    problems = []
    for endpoint, cert in served(lab):
        if isinstance(cert, Exception):
            problems.append(f"{endpoint.what}: {type(cert).__name__}: {cert}")
            continue
        wanted = certs.load_cert(certs.cert_path(lab.layout.tls, endpoint.node))
        if cert.serial_number != wanted.serial_number:
            problems.append(f"{endpoint.what} serves serial {cert.serial_number:x}, not {wanted.serial_number:x}")
    return problems
