"""Where a lab's services speak TLS, and which certificate each one really serves right now:
what verify checks against the lab's CA, what `pglab certs` shows beside the files, and how
`pglab certs rotate` knows that every node serves its new certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pglab import stacks
from pglab.lab import Lab
from pglab.tls import certs


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
    """Every TLS service of the lab, as its stack and its components declare them (``tls_services``)."""
    client = (certs.cert_path(lab.layout.tls, certs.CLIENT), certs.key_path(lab.layout.tls, certs.CLIENT))
    return [TlsEndpoint(s.node.name, s.service, lab.address(s.node.name), s.port, s.postgres,
                        client if s.client_certificate else None)
            for s in stacks.tls_services(lab.topology)]


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
