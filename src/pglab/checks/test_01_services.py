"""Check 1, services: the DCS is healthy, every Patroni answers and its PostgreSQL listens,
HAProxy listens on its three ports; each service runs under the node's service manager."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from pglab import sql
from pglab.checks import dcs_health_url, listens, service_state
from pglab.lab import Lab
from pglab.tls import certs


def _get_json(lab: Lab, url: str) -> object:
    """GET over HTTPS verified against the lab's CA (with pglab's client certificate, which the
    DCS requires), or over HTTP in a plaintext lab."""
    tls = lab.layout.tls
    client = (certs.cert_path(tls, certs.CLIENT), certs.key_path(tls, certs.CLIENT))
    context = certs.client_context(lab.ca_file, client if lab.ca_file else None)
    with urllib.request.urlopen(url, timeout=3, context=context) as response:
        return json.loads(response.read() or b"null")


def _scheme(lab: Lab) -> str:
    return "https" if lab.topology.tls else "http"


def _answer(lab: Lab, dcs_node: str, what: str, url: str) -> object:
    try:
        return _get_json(lab, url)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise AssertionError(f"{dcs_node}: {what} does not answer at {url}: {sql.first_line(exc)}") from None


def _etcd_healthy(lab: Lab, dcs_node: str) -> None:
    url = dcs_health_url(lab, dcs_node, _scheme(lab))
    answer = _answer(lab, dcs_node, "etcd", url)
    assert isinstance(answer, dict) and answer.get("health") == "true", (
        f"{dcs_node}: etcd is not healthy: {url} answered {answer!r}")


def _consul_healthy(lab: Lab, dcs_node: str) -> None:
    url = dcs_health_url(lab, dcs_node, _scheme(lab))
    answer = _answer(lab, dcs_node, "Consul", url)
    assert answer, f"{dcs_node}: Consul has no leader ({url} answered {answer!r})"


# The topology's dcs -> how to ask it whether it is healthy.
DCS_HEALTH: dict[str, Callable[[Lab, str], None]] = {"etcd": _etcd_healthy, "consul": _consul_healthy}


def test_dcs_answers_healthy(lab: Lab, dcs_node: str) -> None:
    DCS_HEALTH[lab.topology.dcs](lab, dcs_node)


def test_dcs_service_runs(lab: Lab, dcs_node: str) -> None:
    running, detail = service_state(lab, dcs_node, lab.topology.dcs)
    assert running, f"{dcs_node}: {lab.topology.dcs} is not running: {detail}"


def test_patroni_rest_api_answers(lab: Lab, postgres_node: str) -> None:
    url = f"{_scheme(lab)}://{lab.address(postgres_node)}:{lab.topology.ports.patroni}/patroni"
    try:
        answer = _get_json(lab, url)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise AssertionError(f"{postgres_node}: Patroni's REST API does not answer at {url}: "
                             f"{sql.first_line(exc)}") from None
    state = answer.get("state") if isinstance(answer, dict) else None
    assert state == "running", f"{postgres_node}: Patroni answers but PostgreSQL is {state or 'unknown'} ({url})"


def test_patroni_service_runs(lab: Lab, postgres_node: str) -> None:
    running, detail = service_state(lab, postgres_node, "patroni")
    assert running, f"{postgres_node}: Patroni is not running: {detail}"


def test_postgres_listens(lab: Lab, postgres_node: str) -> None:
    address, port = lab.address(postgres_node), lab.topology.ports.postgres
    assert listens(lab, postgres_node, port), f"{postgres_node}: nothing listens on {address}:{port} (PostgreSQL)"


def test_haproxy_listens(lab: Lab, haproxy_node: str) -> None:
    address, ports = lab.address(haproxy_node), lab.topology.ports
    wanted = {"writes": ports.haproxy_primary, "reads": ports.haproxy_replicas, "stats": ports.haproxy_stats}
    silent = [f"{port} ({what})" for what, port in wanted.items() if not listens(lab, haproxy_node, port)]
    assert not silent, f"{haproxy_node}: HAProxy does not listen on {address} port(s) {', '.join(silent)}"


def test_haproxy_service_runs(lab: Lab, haproxy_node: str) -> None:
    running, detail = service_state(lab, haproxy_node, "haproxy")
    assert running, f"{haproxy_node}: HAProxy is not running: {detail}"
