"""A lab's own certificate authority and its certificates: one server certificate per node
(every service of the node presents it), and one client certificate for pglab itself.

Made at render time with ``cryptography``, kept in ``.pglab/<name>/tls/`` (keys 0600, never
logged), reused by every later render, so a second ``up`` changes nothing. The CA's key never
leaves the lab directory: the roles deliver to each node the trust bundle (``ca.crt``), the node's
certificate and its key.

``ca.crt`` is a *bundle*: normally the one current CA, and during a CA rotation the new CA beside
the old one, so that every client trusts both until every node serves a certificate of the new one.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pglab.secrets import write_private
from pglab.topology import Node, Topology

CA_DAYS = 3650
CERT_DAYS = 365
# `pglab status` warns, and `pglab verify` fails, when a certificate has fewer days left.
WARN_DAYS = 30
# pglab's own client certificate (etcd requires one from every client).
CLIENT = "pglab"

CA_CERT = "ca.crt"  # the trust bundle every node and client reads
CA_KEY = "ca.key"  # the current CA's key: stays in the lab directory


@dataclass(frozen=True)
class CertInfo:
    """What `pglab certs` shows of one certificate."""

    name: str  # node name, "pglab" (client) or "ca"
    subject: str
    sans: list[str]
    not_after: datetime.datetime
    serial: int
    issuer: str

    def days_left(self, now: datetime.datetime | None = None) -> float:
        now = now or datetime.datetime.now(datetime.UTC)
        return (self.not_after - now).total_seconds() / 86400


def cert_path(tls_dir: Path, name: str) -> Path:
    return tls_dir / f"{name}.crt"


def key_path(tls_dir: Path, name: str) -> Path:
    return tls_dir / f"{name}.key"


def node_sans(topology: Topology, node: Node) -> tuple[list[str], list[ipaddress.IPv4Address]]:
    """DNS names and addresses a node's certificate must carry: the node's name, its address on
    VMs and on loopback (the same certificate serves either provider), and, for a PostgreSQL
    node, HAProxy's too (and the lab's virtual IP): a client that connects through HAProxy's TCP
    port talks TLS with the node HAProxy picked, and verify-full checks the name the client dialled."""
    names = [node.name]
    addresses = [node.address, topology.loopback_address(node)]
    if "postgres" in node.roles:
        # The virtual IP lands on whichever data node leads: each one's certificate names it.
        if topology.vip is not None:
            addresses.append(topology.vip.address)
        for router in topology.with_role("haproxy"):
            if router.name != node.name:
                names.append(router.name)
                addresses += [router.address, topology.loopback_address(router)]
    addresses = list(dict.fromkeys(addresses))
    # pgBackRest (2.45) matches the host it dials against DNS names only: the addresses again, as names.
    return [*names, *(str(a) for a in addresses)], addresses


# Reading -------------------------------------------------------------------------------------

def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_bundle(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes()) if path.exists() else []


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return (cert.public_key().public_bytes(serialization.Encoding.PEM, spki)
            == key.public_key().public_bytes(serialization.Encoding.PEM, spki))


def sans_of(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.DNSName), *(str(a) for a in ext.get_values_for_type(x509.IPAddress))]


def info(name: str, cert: x509.Certificate) -> CertInfo:
    return CertInfo(name=name, subject=cert.subject.rfc4514_string(), sans=sans_of(cert),
                    not_after=cert.not_valid_after_utc, serial=cert.serial_number,
                    issuer=cert.issuer.rfc4514_string())


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` issued ``cert`` (names and signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# Making --------------------------------------------------------------------------------------

def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: every component here speaks it (OpenSSL, Go's TLS, Python), and it is made at once.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _now() -> datetime.datetime:
    # A minute back: a machine whose clock lags a little must not see a certificate "not yet valid".
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)


def new_ca(lab: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = _now()
    # The date in the name tells a rotated CA from its predecessor in `pglab certs`.
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pglab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"pglab lab {lab} CA {now:%Y-%m-%d %H:%M:%S}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(common_name: str, dns: Iterable[str], addresses: Iterable[ipaddress.IPv4Address],
          ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          days: int = CERT_DAYS) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``common_name`` signed by the CA, good as a server and as a client (etcd
    peers and Patroni's etcd client present the node's certificate)."""
    key = _new_key()
    now = _now()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns] + [x509.IPAddress(a) for a in addresses]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pglab"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(min(now + datetime.timedelta(days=days), ca.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=True, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


# The lab's directory -------------------------------------------------------------------------

@dataclass
class LabCerts:
    """The certificates of one lab in its ``tls/`` directory."""

    topology: Topology
    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / CA_CERT

    def current_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        """The CA that signs: the one of the bundle that matches ``ca.key``."""
        key_file = self.dir / CA_KEY
        if not key_file.exists():
            return None
        key = _load_key(key_file)
        return next(((c, key) for c in load_bundle(self.ca_file) if _same_key(c, key)), None)

    def names(self) -> list[str]:
        """Every certificate the lab has besides its CA: each node's, then pglab's own."""
        return [n.name for n in self.topology.nodes] + [CLIENT]

    def _wanted_sans(self, name: str) -> tuple[list[str], list[ipaddress.IPv4Address]]:
        if name == CLIENT:
            return [CLIENT], []
        return node_sans(self.topology, self.topology.node(name))

    def ensure(self) -> list[str]:
        """Make what is missing: the CA, and each certificate that is missing, not signed by the
        current CA, or whose names no longer match the topology. Returns what was made; nothing
        is written when everything is there (a second ``up`` changes nothing)."""
        made: list[str] = []
        current = self.current_ca()
        if current is None:
            current = new_ca(self.topology.name)
            self._write_ca(*current, keep=[])
            made.append("ca")
        for name in self.names():
            if self._needs_new(name, current[0]):
                self._issue(name, *current)
                made.append(name)
        return made

    def _needs_new(self, name: str, ca: x509.Certificate) -> bool:
        crt, key = cert_path(self.dir, name), key_path(self.dir, name)
        if not crt.exists() or not key.exists():
            return True
        cert = load_cert(crt)
        dns, addresses = self._wanted_sans(name)
        wanted = [*dns, *(str(a) for a in addresses)]
        return not signed_by(cert, ca) or sorted(sans_of(cert)) != sorted(wanted)

    def _issue(self, name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
        dns, addresses = self._wanted_sans(name)
        cert, key = issue(name, dns, addresses, ca, ca_key)
        write_private(key_path(self.dir, name), _key_pem(key))
        cert_path(self.dir, name).write_bytes(_pem(cert))

    def _write_ca(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, keep: list[x509.Certificate]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        write_private(self.dir / CA_KEY, _key_pem(key))
        self.ca_file.write_bytes(b"".join(_pem(c) for c in [*keep, cert]))

    # Rotation ----------------------------------------------------------------------------------
    def reissue(self) -> None:
        """New certificates (new keys, new serials) for every node and pglab, from the current CA."""
        current = self.current_ca()
        if current is None:
            raise FileNotFoundError(f"{self.dir / CA_KEY} is missing: the lab has no CA yet; run `pglab up`")
        for name in self.names():
            self._issue(name, *current)

    def add_new_ca(self) -> None:
        """A new CA signs from now on; the bundle trusts it beside the ones it had."""
        cert, key = new_ca(self.topology.name)
        self._write_ca(cert, key, keep=load_bundle(self.ca_file))

    def retire_old_cas(self) -> list[CertInfo]:
        """Keep only the current CA in the bundle; returns the CAs retired."""
        current = self.current_ca()
        if current is None:
            return []
        old = [c for c in load_bundle(self.ca_file) if c != current[0]]
        self.ca_file.write_bytes(_pem(current[0]))
        return [info("ca", c) for c in old]

    # Reading for `pglab certs` and verify -------------------------------------------------------
    def inventory(self) -> list[CertInfo]:
        """The CA(s) of the bundle, then each certificate that exists."""
        out = [info("ca", c) for c in load_bundle(self.ca_file)]
        for name in self.names():
            if cert_path(self.dir, name).exists():
                out.append(info(name, load_cert(cert_path(self.dir, name))))
        return out

    def expiring(self, days: float = WARN_DAYS) -> list[str]:
        """Certificates that expire within ``days``, one sentence each saying what to run."""
        return [f"certificate {c.name} ({c.subject}) expires in {c.days_left():.0f} days, on "
                f"{c.not_after:%Y-%m-%d}; run `pglab certs rotate{' --ca' if c.name == 'ca' else ''}`"
                for c in self.inventory() if c.days_left() < days]

    def key_files(self) -> list[Path]:
        return [p for p in [self.dir / CA_KEY, *(key_path(self.dir, n) for n in self.names())] if p.exists()]


def client_context(ca_file: Path | None, client: tuple[Path, Path] | None = None) -> ssl.SSLContext | None:
    """An HTTPS client context that trusts the lab's CA bundle only, names checked (and presents
    ``client``, a certificate and its key, to a server that asks for one, as etcd does); None
    for a plaintext lab. Made anew for each call, so a rotated bundle counts at once."""
    if ca_file is None:
        return None
    context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


# What a service really serves ------------------------------------------------------------------

# PostgreSQL's SSLRequest: length 8, then the request code 1234.5679; the server answers one byte.
_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def served_certificate(host: str, port: int, postgres: bool = False, client: tuple[Path, Path] | None = None,
                       timeout: float = 3.0) -> x509.Certificate:
    """The certificate a service presents at host:port, fetched without trusting it (the caller
    judges it: :func:`chains_to`). ``postgres``: ask for TLS the way libpq does (SSLRequest) first.
    ``client``: present this certificate and key, for a server that requires one (etcd), and
    make sure, with an HTTP request, that the server accepts it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    with socket.create_connection((host, port), timeout=timeout) as raw:
        if postgres:
            raw.sendall(_SSL_REQUEST)
            answer = raw.recv(1)
            if answer != b"S":
                raise ssl.SSLError(f"{host}:{port} does not speak TLS (it answered {answer!r} to SSLRequest)")
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            if client is not None:
                # With TLS 1.3 the server judges the client's certificate after the handshake:
                # its verdict (an alert, or an answer) comes with the first exchange.
                tls.sendall(f"GET /health HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                if not tls.recv(1):
                    raise ssl.SSLError(f"{host}:{port} closed the connection: it refused the client certificate")
    if not der:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return x509.load_der_x509_certificate(der)


def chains_to(cert: x509.Certificate, bundle: Path) -> x509.Certificate | None:
    """The CA of the lab's bundle that issued ``cert``, or None."""
    return next((ca for ca in load_bundle(bundle) if signed_by(cert, ca)), None)
