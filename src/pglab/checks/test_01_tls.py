"""Check 1b, TLS (labs with ``tls: true``): on every PostgreSQL node (and the pg_auto_failover
monitor) a plaintext TCP connection is refused and a verified one (verify-full against the lab's
CA) accepted; every walsender's connection is TLS; every certificate a service serves chains to
the lab's CA and has at least 30 days left; every private key is 0600, on the nodes and in the
lab directory."""

from __future__ import annotations

import psycopg

from pglab import sql
from pglab.checks import infra, leader, node_endpoint, node_variable
from pglab.lab import Lab
from pglab.tls import certs, endpoints

TLS = True  # only for labs with tls: true


def _postgres_ports(lab: Lab) -> list[tuple[str, int]]:
    """Every PostgreSQL a client may reach: each data node's, and the monitor's."""
    ports = [(n.name, lab.topology.ports.postgres) for n in lab.topology.with_role("postgres")]
    return ports + [(n.name, lab.topology.ports.monitor) for n in lab.topology.with_role("monitor")]


def test_plaintext_tcp_is_refused(lab: Lab, password: str) -> None:
    accepted = []
    for node, port in _postgres_ports(lab):
        try:
            with sql.session(host=lab.address(node), port=port, dbname="postgres", user="postgres",
                             password=password, sslmode="disable", connect_timeout=sql.connect_timeout()):
                accepted.append(f"{node}:{port}")
        except psycopg.OperationalError as exc:
            assert "no encryption" in str(exc) or "SSL off" in str(exc), (
                f"{node}:{port} refused a plaintext connection, but not for want of TLS: {sql.first_line(exc)}")
    assert not accepted, f"plaintext TCP connections were accepted by {', '.join(accepted)}"


def test_verified_tls_is_accepted(lab: Lab, postgres_node: str, password: str) -> None:
    host, port = node_endpoint(lab, postgres_node)
    try:
        rows = sql.query(host, port, password, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                         tls=lab.libpq_tls())
    except (OSError, psycopg.Error) as exc:
        raise AssertionError(f"{postgres_node}: a verify-full connection with the lab's CA failed: "
                             f"{sql.first_line(exc)}") from None
    assert rows and rows[0][0], f"{postgres_node}: the session is not encrypted ({rows})"


def test_walsenders_use_tls(lab: Lab, password: str) -> None:
    current = leader(lab)
    host, port = node_endpoint(lab, current)
    rows = sql.query(host, port, password,
                     "SELECT r.application_name, r.client_addr::text, coalesce(s.ssl, false), s.version "
                     "FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s USING (pid)", tls=lab.libpq_tls())
    replicas = len(lab.topology.with_role("postgres")) - 1
    assert len(rows) >= replicas, f"the leader {current} has {len(rows)} walsender(s), expected {replicas}"
    plain = [f"{name} ({addr})" for name, addr, ssl, _version in rows if not ssl]
    assert not plain, f"walsenders on the leader {current} without TLS: {', '.join(plain)}"


def test_served_certificates_chain_to_the_lab_ca_and_last(lab: Lab) -> None:
    problems = []
    for endpoint, cert in endpoints.served(lab):
        what = endpoint.what
        if isinstance(cert, Exception):
            problems.append(f"{what}: no certificate ({sql.first_line(cert)})")
            continue
        if certs.chains_to(cert, lab.certificates().ca_file) is None:
            problems.append(f"{what}: {cert.subject.rfc4514_string()} is not signed by a CA of {lab.ca_file}")
        days = certs.info(what, cert).days_left()
        if days < certs.WARN_DAYS:
            problems.append(f"{what}: expires in {days:.0f} days (fewer than {certs.WARN_DAYS})")
    assert not problems, "; ".join(problems)


def test_key_files_are_private_on_the_node(lab: Lab, any_node: str) -> None:
    path = node_variable(lab, any_node, "pglab_tls_key_file")
    key = infra(lab, any_node).file(path)
    assert key.exists, f"{any_node}: {path} is missing"
    assert key.mode == 0o600, f"{any_node}: {path} is mode {key.mode:o}, not 600"


def test_key_files_are_private_in_the_lab_directory(lab: Lab) -> None:
    keys = lab.certificates().key_files()
    assert keys, f"no key in {lab.layout.tls}"
    loose = [f"{k} ({k.stat().st_mode & 0o777:o})" for k in keys if k.stat().st_mode & 0o777 != 0o600]
    assert not loose, f"keys readable by others: {', '.join(loose)}"
