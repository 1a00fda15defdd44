"""The roles' TLS configuration as a VM lab would get it: Ansible renders each component's
configuration from the lab's real inventory (the roles' own defaults, the rendered variables),
here on this machine instead of on the VMs, and the files say TLS on every hop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pglab import paths
from pglab.lab import Lab
from tests.conftest import write_topology

ROLES = ("pglab", "postgresql", "patroni", "etcd", "haproxy", "consul")
# The conftest's default_vm_configs: the default VM lab's files, TLS on (True) or off (False).
DefaultVmConfigs = Callable[..., dict[str, dict[str, str]]]
TEMPLATES = {  # role -> (template, the group whose hosts run it)
    "patroni": ("patroni.yml.j2", "pglab_postgres"),
    "etcd": ("etcd.conf.yml.j2", "pglab_dcs"),
    "haproxy": ("haproxy.cfg.j2", "pglab_haproxy"),
    "consul": ("consul.hcl.j2", "pglab_dcs"),
}


def _render_configs(lab: Lab, out: Path, roles: tuple[str, ...] | None = None,
                    templates: dict[str, tuple[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """{role: {node: text}}: every role's template rendered for each node of its group. The
    roles are in the play (their defaults count, their argument specs are checked), their tasks
    are skipped by tag, and only the template tasks below run, writing into ``out``. ``roles`` and
    ``templates`` default to ROLES and TEMPLATES."""
    rendered = lab.render()
    tasks = [
        {"name": f"Render {role}", "ansible.builtin.template": {
            "src": str(paths.roles_dir() / role / "templates" / template),
            "dest": f"{out}/{role}-{{{{ inventory_hostname }}}}", "mode": "0600"},
         "when": f"inventory_hostname in groups['{group}']", "tags": ["render"]}
        for role, (template, group) in (TEMPLATES if templates is None else templates).items()
    ]
    play = [{"hosts": "all", "gather_facts": False, "roles": list(ROLES if roles is None else roles), "tasks": tasks}]
    playbook = out / "render.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(paths.roles_dir()), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(rendered.inventory), str(playbook),
         "--tags", "render", "-e", "ansible_connection=local", "-e", "ansible_become=false",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    configs: dict[str, dict[str, str]] = {}
    for path in out.iterdir():
        role, _, node = path.name.partition("-")
        if role in (TEMPLATES if templates is None else templates):
            configs.setdefault(role, {})[node] = path.read_text()
    return configs


def test_vm_lab_configs_speak_tls_on_every_hop(default_vm_configs: DefaultVmConfigs) -> None:
    configs = default_vm_configs(tls=True)
    tls_dir = "/etc/pglab/tls"  # no node root on VMs
    patroni = yaml.safe_load(configs["patroni"]["pg1"])
    assert patroni["restapi"]["certfile"] == f"{tls_dir}/node.crt"
    assert patroni["restapi"]["keyfile"] == f"{tls_dir}/node.key"
    assert patroni["restapi"]["cafile"] == f"{tls_dir}/ca.crt"
    assert patroni["ctl"]["cacert"] == f"{tls_dir}/ca.crt"
    assert patroni["etcd3"]["protocol"] == "https"
    assert patroni["etcd3"]["hosts"] == ["192.168.11.100:2379"]  # VM addresses, in the certificates' SANs
    assert patroni["etcd3"]["cert"] == f"{tls_dir}/node.crt"
    for user in ("superuser", "replication", "rewind"):
        assert patroni["postgresql"]["authentication"][user]["sslmode"] == "verify-full"
        assert patroni["postgresql"]["authentication"][user]["sslrootcert"] == f"{tls_dir}/ca.crt"
    parameters = patroni["postgresql"]["parameters"]
    assert parameters["ssl"] == "on" and parameters["ssl_key_file"] == f"{tls_dir}/node.key"
    hba = patroni["postgresql"]["pg_hba"]
    assert "hostnossl all all 0.0.0.0/0 reject" in hba
    assert "hostnossl replication all 0.0.0.0/0 reject" in hba
    assert not [line for line in hba if line.startswith("host ")], hba

    etcd = yaml.safe_load(configs["etcd"]["dcs"])
    assert etcd["listen-client-urls"] == "https://192.168.11.100:2379"
    assert etcd["initial-cluster"] == "dcs=https://192.168.11.100:2380"
    for section in ("client-transport-security", "peer-transport-security"):
        assert etcd[section]["client-cert-auth"] is True
        assert etcd[section]["trusted-ca-file"] == f"{tls_dir}/ca.crt"

    haproxy = configs["haproxy"]["haproxy"]
    servers = [line.strip() for line in haproxy.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == 12  # three members behind the pooled and the direct writes and reads
    for line in servers:
        node = line.split()[1]
        assert f"check-ssl verify required ca-file {tls_dir}/ca.crt check-sni {node} verifyhost {node}" in line
    # The stats page on HTTPS with the node's certificate; its key beside it as node.key.
    assert f"bind 192.168.11.101:7000 ssl crt {tls_dir}/node.crt" in haproxy
    assert "ssl-load-extra-del-ext" in haproxy


def test_consul_renders_https_with_client_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    lab = Lab.from_file(write_topology(tmp_path, name="ctls", provider="vagrant", dcs="consul"))
    out = tmp_path / "out"
    out.mkdir()
    configs = _render_configs(lab, out)
    consul = configs["consul"]["dcs"]
    assert "https = 8500" in consul and "http = -1" in consul
    assert 'ca_file = "/etc/consul.d/tls/ca.crt"' in consul and "verify_incoming = true" in consul
    patroni = yaml.safe_load(configs["patroni"]["pg2"])
    assert patroni["consul"]["scheme"] == "https" and patroni["consul"]["cacert"] == "/etc/pglab/tls/ca.crt"


def test_a_plaintext_lab_keeps_plain_configs(default_vm_configs: DefaultVmConfigs) -> None:
    configs = default_vm_configs(tls=False)
    patroni = yaml.safe_load(configs["patroni"]["pg1"])
    assert "certfile" not in patroni["restapi"] and "protocol" not in patroni["etcd3"]
    assert "host all all 192.168.11.0/24 scram-sha-256" in patroni["postgresql"]["pg_hba"]
    assert yaml.safe_load(configs["etcd"]["dcs"])["listen-client-urls"].startswith("http://")
    assert "check-ssl" not in configs["haproxy"]["haproxy"]
    assert "bind 192.168.11.101:7000\n" in configs["haproxy"]["haproxy"]  # the stats page on HTTP
    assert " ssl crt " not in configs["haproxy"]["haproxy"]
