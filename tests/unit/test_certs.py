"""The lab's CA and certificates: made at render, kept by later renders, names that match every
address a node answers on, keys 0600, and rotation (new certificates, a new CA beside the old)."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from pglab.lab import Lab
from pglab.tls import certs
from tests.conftest import loopback_address, write_topology


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab.from_file(write_topology(tmp_path, name="ctest"))


def _openssl_verify(ca: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True)


def test_render_makes_a_ca_and_one_certificate_per_node_and_for_pglab(lab: Lab) -> None:
    lab.render()
    tls = lab.layout.tls
    names = sorted(p.stem for p in tls.glob("*.crt"))
    assert names == sorted(["ca", "dcs", "haproxy", "pg1", "pg2", "pg3", "pglab"])
    for name in names[1:]:
        assert _openssl_verify(tls / "ca.crt", tls / f"{name}.crt").returncode == 0, name


def test_keys_are_private_and_the_directory_too(lab: Lab) -> None:
    lab.render()
    keys = sorted(lab.layout.tls.glob("*.key"))
    assert len(keys) == 7
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    assert lab.layout.tls.stat().st_mode & 0o777 == 0o700


def test_a_second_render_keeps_every_file(lab: Lab) -> None:
    lab.render()
    before = {p: p.read_bytes() for p in lab.layout.tls.iterdir()}
    assert lab.certificates().ensure() == []
    lab.render()
    assert {p: p.read_bytes() for p in lab.layout.tls.iterdir()} == before


def test_node_names_cover_vm_and_loopback_addresses_and_haproxy_for_postgres(lab: Lab) -> None:
    lab.render()
    pg1 = certs.sans_of(certs.load_cert(lab.layout.tls / "pg1.crt"))
    assert {"pg1", "192.168.11.120", loopback_address(120)} <= set(pg1)
    # Clients dial HAProxy's address and talk TLS with the node behind it.
    assert {"haproxy", "192.168.11.101", loopback_address(101)} <= set(pg1)
    dcs = certs.sans_of(certs.load_cert(lab.layout.tls / "dcs.crt"))
    assert set(dcs) == {"dcs", "192.168.11.100", loopback_address(100)}


def test_certificates_are_valid_long_enough(lab: Lab) -> None:
    lab.render()
    for entry in lab.certificates().inventory():
        assert entry.days_left() > certs.WARN_DAYS, entry.name


def test_a_changed_topology_reissues_only_what_changed(tmp_path: Path) -> None:
    path = write_topology(tmp_path, name="ctest")
    Lab.from_file(path).render()
    tls = Lab.from_file(path).layout.tls
    pg1_before = (tls / "pg1.crt").read_bytes()
    path.write_text(path.read_text().replace("address: 192.168.11.122", "address: 192.168.11.123"))
    made = Lab.from_file(path).certificates().ensure()
    assert made == ["pg3"]
    assert (tls / "pg1.crt").read_bytes() == pg1_before


def test_a_plaintext_lab_has_no_certificates(tmp_path: Path) -> None:
    # Without backups too: pgBackRest's TLS server needs the lab's certificates even in a plaintext lab.
    path = write_topology(tmp_path, name="ptest")
    path.write_text(path.read_text().replace("tls: true", "tls: false").replace("  enabled: true", "  enabled: false"))
    lab = Lab.from_file(path)
    lab.render()
    assert not lab.layout.tls.exists()
    assert lab.ca_file is None and lab.libpq_tls() == {}
    assert "sslmode" not in lab.dsn()


def test_reissue_gives_new_serials_from_the_same_ca(lab: Lab) -> None:
    lab.render()
    lab_certs = lab.certificates()
    before = {c.name: c.serial for c in lab_certs.inventory()}
    lab_certs.reissue()
    after = {c.name: c.serial for c in lab_certs.inventory()}
    assert after["ca"] == before["ca"]
    assert all(after[n] != before[n] for n in lab_certs.names())
    assert _openssl_verify(lab.layout.tls / "ca.crt", lab.layout.tls / "pg1.crt").returncode == 0


def test_a_new_ca_is_trusted_beside_the_old_until_the_old_is_retired(lab: Lab) -> None:
    lab.render()
    lab_certs = lab.certificates()
    old_pg1 = lab.layout.tls / "old-pg1.crt"
    old_pg1.write_bytes((lab.layout.tls / "pg1.crt").read_bytes())
    lab_certs.add_new_ca()
    assert len(certs.load_bundle(lab_certs.ca_file)) == 2
    lab_certs.reissue()
    # Both generations verify against the bundle while it holds both CAs.
    assert _openssl_verify(lab_certs.ca_file, old_pg1).returncode == 0
    assert _openssl_verify(lab_certs.ca_file, lab.layout.tls / "pg1.crt").returncode == 0
    retired = lab_certs.retire_old_cas()
    assert len(retired) == 1 and len(certs.load_bundle(lab_certs.ca_file)) == 1
    assert _openssl_verify(lab_certs.ca_file, old_pg1).returncode != 0
    assert _openssl_verify(lab_certs.ca_file, lab.layout.tls / "pg1.crt").returncode == 0
    assert lab_certs.ensure() == []  # the new generation is complete


def test_libpq_keywords_and_uris_ask_for_verify_full(lab: Lab) -> None:
    lab.render()
    ca = str(lab.layout.tls / "ca.crt")
    assert lab.libpq_tls() == {"sslmode": "verify-full", "sslrootcert": ca}
    assert lab.dsn().endswith(f"?sslmode=verify-full&sslrootcert={ca}")
    assert lab.connect_kwargs()["sslmode"] == "verify-full"


def test_sans_are_ip_addresses_not_names_for_addresses(lab: Lab) -> None:
    lab.render()
    cert = certs.load_cert(lab.layout.tls / "pg2.crt")
    from cryptography import x509

    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert ipaddress.IPv4Address("192.168.11.121") in ips


def test_a_certificate_near_its_end_is_named_with_what_to_run(lab: Lab) -> None:
    lab.render()
    lab_certs = lab.certificates()
    ca, ca_key = lab_certs.current_ca()  # type: ignore[misc]
    cert, _key = certs.issue("pg2", ["pg2"], [], ca, ca_key, days=10)
    from cryptography.hazmat.primitives import serialization

    (lab.layout.tls / "pg2.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    warnings = lab_certs.expiring()
    assert len(warnings) == 1
    assert warnings[0].startswith("certificate pg2 (") and "`pglab certs rotate`" in warnings[0]


def test_certs_commands_refuse_a_plaintext_lab(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pglab.cli import main

    path = write_topology(tmp_path, name="ptest")
    path.write_text(path.read_text().replace("tls: true", "tls: false"))
    for args in (["certs"], ["certs", "rotate"]):
        result = CliRunner().invoke(main, [*args, "-f", str(path)] if args == ["certs"] else
                                    ["certs", "rotate", "-f", str(path)])
        assert result.exit_code == 1, result.output
        assert "runs without TLS (tls: false" in result.output


def test_certs_of_a_lab_not_yet_up_say_so(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pglab.cli import main

    path = write_topology(tmp_path, name="ntest")
    result = CliRunner().invoke(main, ["certs", "-f", str(path)])
    assert result.exit_code == 1 and "run `pglab up`" in result.output


def test_served_certificate_reads_what_a_tls_server_presents(lab: Lab) -> None:
    import socket
    import ssl
    import threading

    lab.render()
    tls = lab.layout.tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls / "pg1.crt"), str(tls / "pg1.key"))
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.recv(1)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    cert = certs.served_certificate("127.0.0.1", port)
    server.close()
    assert cert.serial_number == certs.load_cert(tls / "pg1.crt").serial_number
    assert certs.chains_to(cert, tls / "ca.crt") is not None


def test_each_stack_declares_its_tls_services(tmp_path: Path) -> None:
    from pglab import catalog, stacks

    patroni = Lab.from_file(write_topology(tmp_path, name="stls")).topology
    found = {(s.node.name, s.service, s.port, s.postgres, s.client_certificate)
             for s in stacks.spec("patroni").tls_services(patroni)}
    assert ("pg1", "postgresql", 5432, True, False) in found and ("pg1", "patroni", 8008, False, False) in found
    assert ("dcs", "etcd", 2379, False, True) in found
    # HAProxy relays PostgreSQL's TLS on its client ports; it serves its own certificate on the stats page
    # only, which the component declares beside the stack's.
    assert not [s for s in found if s[0] == "haproxy"]
    assert [(s.node.name, s.service, s.port) for s in stacks.tls_services(patroni) if s.node.name == "haproxy"] == [
        ("haproxy", "haproxy-stats", 7000)]
    pgaf = catalog.parse(catalog.default_yaml(stack="pg_auto_failover"), "pglab.yml")
    services = {(s.node.name, s.service) for s in stacks.spec("pg_auto_failover").tls_services(pgaf)}
    assert services == {("pg1", "postgresql"), ("pg2", "postgresql"), ("monitor", "monitor")}
