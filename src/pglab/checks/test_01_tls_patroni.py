"""Check 1c, TLS of the Patroni stack (labs with ``tls: true``): Patroni's REST API, the DCS and
HAProxy's stats page speak HTTPS only: a plain HTTP request gets no HTTP answer at all."""

from __future__ import annotations

import urllib.error
import urllib.request

from pglab.checks import dcs_health_url
from pglab.lab import Lab

TLS = True  # only for labs with tls: true


def _plain_http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error is still an HTTP answer
    except (OSError, urllib.error.URLError):
        return False


def test_rest_api_refuses_plain_http(lab: Lab, postgres_node: str) -> None:
    url = f"http://{lab.address(postgres_node)}:{lab.topology.ports.patroni}/health"
    assert not _plain_http_answers(url), f"{postgres_node}: Patroni's REST API answered plain HTTP at {url}"


def test_dcs_refuses_plain_http(lab: Lab, dcs_node: str) -> None:
    url = dcs_health_url(lab, dcs_node, "http")
    assert not _plain_http_answers(url), f"{dcs_node}: {lab.topology.dcs} answered plain HTTP at {url}"


def test_stats_page_refuses_plain_http(lab: Lab, haproxy_node: str) -> None:
    url = f"http://{lab.address(haproxy_node)}:{lab.topology.ports.haproxy_stats}/"
    assert not _plain_http_answers(url), f"{haproxy_node}: HAProxy's stats page answered plain HTTP at {url}"
