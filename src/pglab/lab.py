"""A lab: topology + directory + secrets + provider + stack, and its lifecycle (up, destroy).

Nothing here prints: progress goes to an ``on_event`` callback (see :mod:`pglab.ui`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from pglab import ansible, catalog, paths, render, sites, sql, stacks, topology, waiting
from pglab.components import pooler, vip
from pglab.components.haproxy import Backend, stats_url
from pglab.errors import InputError, PglabError
from pglab.prerequisites import Prerequisite
from pglab.providers import Provider, get_provider
from pglab.render import RenderedLab
from pglab.secrets import SUPERUSER
from pglab.stacks import Stack, StackSite, stack_class
from pglab.stacks.base import ClientEndpoint, Health, StackError, uri_query
from pglab.tls import certs
from pglab.topology import Node, Topology


class LabWarning(UserWarning):
    """Something in a lab's file that works but deserves a word (the CLI prints it on one line)."""


@dataclass(frozen=True)
class Step:
    """A stage of a long operation began."""

    name: str


@dataclass(frozen=True)
class Waiting:
    """Still waiting for something; ``detail`` says what is missing."""

    detail: str
    elapsed: float


EventSink = Callable[[Any], None]


def ignore_event(_event: Any) -> None:
    """The event sink of callers that show no progress."""


# A client of a virtual IP must notice when the address moves: the node that held its session no
# longer answers for it, and a session waiting for a reply hears nothing, forever (no reset comes).
# TCP keepalives probe the address after 2 s of silence and meet the new holder's reset; the user
# timeout ends a send that nobody acknowledges. Applications behind a VIP need the same.
VIP_CLIENT_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "2", "keepalives_interval": "1",
                         "keepalives_count": "2", "tcp_user_timeout": "5000"}


@dataclass(frozen=True)
class PoolerView:
    """One node's PgBouncer as ``pglab status`` shows it."""

    clients: int  # active client connections
    waiting: int  # clients waiting for a server connection
    servers: int  # server connections, active and idle
    pool_mode: str


@dataclass(frozen=True)
class LabStatus:
    lab: str
    cluster: str
    healthy: bool
    leader: str | None
    members: list[Any]
    problems: list[str]
    haproxy: list[Backend]
    services: dict[str, dict[str, str]]
    last_leader_change: dict[str, Any] | None
    # Client connection strings: write, read (libpq URIs) and the pgpass file with the password.
    endpoints: dict[str, str]
    # The stack's own published URI (pg_auto_failover's formation URI), if it has one.
    uri: str | None = None
    # Things to act on soon that do not make the lab unhealthy (a certificate near its expiry).
    warnings: list[str] = field(default_factory=list)
    # Each data node's PgBouncer from its admin console (None: it did not answer); empty without the pooler.
    poolers: dict[str, PoolerView | None] = field(default_factory=dict)
    # The node that holds the virtual IP now (None: the lab has none, or no node holds it).
    vip_node: str | None = None
    # A two-site lab's sites (the fields above are the primary site's); empty for a one-site lab.
    sites: list[sites.SiteView] = field(default_factory=list)


@dataclass(frozen=True)
class UpResult:
    seconds: float
    changed: int
    parameters_changed: dict[str, str]
    health: Health
    dsn: str
    replicas_dsn: str
    stats_url: str
    secrets_file: Path
    pgpass: Path
    # The stack's own settings (its topology section, e.g. Patroni's ttl) that `up` applied.
    settings_changed: dict[str, Any] = field(default_factory=dict)
    # The virtual IP's endpoint (pooled where the pooler is on); empty without a `vip:` section.
    vip_dsn: str = ""


@dataclass(frozen=True)
class NodePlan:
    """What `up` would do on one node, as Ansible's check mode saw it."""

    node: str
    packages: list[str]  # packages it would install
    tasks: list[str]  # tasks that would change something
    files: list[str]  # files it would write
    # Where check mode stopped on the node (a task that needs what an earlier one only pretended
    # to do, such as a program not installed yet); None when it ran to the end.
    stopped: str | None = None


@dataclass(frozen=True)
class UpCheck:
    seconds: float
    nodes: list[NodePlan]
    log: str


class Lab:
    def __init__(self, topo: Topology, topology_file: Path) -> None:
        self.topology = topo
        self.topology_file = topology_file
        self.dir = paths.lab_dir(topology_file, topo.name)
        self.layout = paths.LabLayout.at(self.dir)
        self.provider: Provider = get_provider(topo, self.dir)
        self._secrets: dict[str, str] | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> Lab:
        path = Path(path)
        try:
            topo = catalog.load(path)
        except topology.TopologyError as exc:
            raise InputError(str(exc)) from None
        for section in catalog.unused_sections(topo):
            warnings.warn(f"{path}: the {section} section applies to provider {section} and is ignored by "
                          f"provider {topo.provider}; remove it", LabWarning, stacklevel=2)
        return cls(topo, path)

    @classmethod
    def default(cls, path: str | Path, stack: str | None = None) -> Lab:
        """The lab `pglab init --stack STACK` would write at ``path``, without writing it."""
        return cls(catalog.parse(catalog.default_yaml(stack=stack), str(path)), Path(path))

    # Files -----------------------------------------------------------------------------------
    @property
    def inventory(self) -> Path:
        return self.layout.inventory

    @property
    def secrets_file(self) -> Path:
        return self.layout.secrets

    def secrets(self) -> dict[str, str]:
        """The lab's passwords, read once (they never change for a lab's life)."""
        if self._secrets is None:
            if not self.secrets_file.exists():
                raise PglabError(f"lab {self.topology.name!r} has not been created: {self.secrets_file} "
                                 "is missing. Run `pglab up` first.")
            self._secrets = yaml.safe_load(self.secrets_file.read_text()) or {}
        return self._secrets

    @property
    def pgpass(self) -> Path:
        return self.layout.pgpass

    def superuser_password(self) -> str:
        """The PostgreSQL superuser's password (every stack's)."""
        return self.secrets()[SUPERUSER.password_variable]

    @property
    def ca_file(self) -> Path | None:
        """The lab's CA bundle (every certificate of the lab chains to it); None without TLS."""
        return self.layout.tls / certs.CA_CERT if self.topology.tls else None

    def certificates(self) -> certs.LabCerts:
        """The lab's CA and certificates in its tls/ directory."""
        return certs.LabCerts(self.topology, self.layout.tls)

    def libpq_tls(self) -> dict[str, str]:
        """libpq keywords of pglab's own connections: verify-full against the lab's CA."""
        return sql.tls_keywords(self.ca_file)

    def node(self, name: str) -> Node:
        """The node called ``name``, or an InputError listing the lab's nodes."""
        try:
            return self.topology.node(name)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None

    def render(self) -> render.RenderedLab:
        self._secrets = None  # rendering may create them
        return render.render(self.topology, self.provider, self.layout)

    # Addresses and clients -------------------------------------------------------------------
    def address(self, node_name: str) -> str:
        return self.provider.address(self.topology.node(node_name))

    def haproxy_address(self) -> str | None:
        if self.topology.sites:
            return self.site(self.primary_site()).haproxy_address()
        nodes = self.topology.with_role("haproxy")
        return self.provider.address(nodes[0]) if nodes else None

    def stack(self, timeout: float = 2.0) -> Stack:
        """The client of the topology's stack (Patroni, pg_auto_failover) for this lab: in a
        two-site lab, for the primary site's cluster."""
        if self.topology.sites:
            return self.site(self.primary_site()).stack(timeout)
        site = StackSite(self.topology, {n.name: self.provider.address(n) for n in self.topology.nodes},
                         self.secrets(), self.ca_file)
        return stack_class(self.topology.stack).from_site(site, timeout=timeout * waiting.timeout_scale())

    # Sites -----------------------------------------------------------------------------------
    def site(self, name: str) -> Lab:
        """Site ``name`` of a two-site lab as a one-site lab: its nodes and its cluster, with this
        lab's directory, secrets and machines (never destroy through it)."""
        if name not in self.topology.sites:
            known = ", ".join(self.topology.sites) or "none: it has one site"
            raise InputError(f"lab {self.topology.name!r} has no site {name!r}; its sites are: {known}")
        site = copy.copy(self)
        site.topology = self.topology.site_view(name)
        return site

    def site_labs(self) -> list[Lab]:
        """Each site as a one-site lab (:meth:`site`); the lab itself when it has one site."""
        return [self.site(name) for name in self.topology.sites] or [self]

    def site_role(self, name: str) -> sites.SiteRole:
        """Whether site ``name``'s cluster is the primary or a standby cluster, as its DCS says."""
        try:
            source = self.site(name).stack().standby_source()
        except (StackError, OSError):
            return "unknown"
        return sites.site_role(source, answered=True)

    def primary_site(self) -> str:
        """The site whose cluster is the primary (the first whose DCS says so); the first listed
        when no site answers."""
        return next((name for name in self.topology.sites if self.site_role(name) == "primary"),
                    self.topology.sites[0])

    def client_endpoints(self) -> dict[str, ClientEndpoint]:
        """Where clients write and read (the stack's :meth:`~pglab.stacks.base.Stack.client_endpoints`).
        In a two-site lab, the writes endpoints name every site's router, the primary site's first:
        clients move to the other site once it is promoted, as a multi-site connection string does.
        A site's router only routes writes to its own primary (a standby site's closes the
        connection), so libpq's next host is tried. The direct endpoint also asks libpq to check
        (target_session_attrs=read-write); the pooled one must not: PgBouncer 1.18 reports the
        read-only state its pool saw at its first login until it reconnects, so after any change of
        leader libpq would refuse the very primary the router picked."""
        found = self.stack().client_endpoints()
        if not self.topology.sites:
            return found
        primary = self.primary_site()
        others = [self.site(name).stack().client_endpoints() for name in self.topology.sites if name != primary]
        pooled = pooler.enabled(self.topology)
        for key in ("write", "write_direct"):
            if key in found and all(key in other for other in others):
                hosts = found[key].hosts + tuple(h for other in others for h in other[key].hosts)
                checked = key == "write_direct" or not pooled
                found[key] = ClientEndpoint(hosts, found[key].port, "read-write" if checked else None)
        return found

    def routes_writes(self) -> bool:
        """Whether clients have one entry point that follows the leader (HAProxy, multi-host URI)."""
        return "write" in self.client_endpoints()

    def writes_endpoint(self) -> tuple[str, int]:
        """Where clients write (host may list several hosts: libpq then picks the one taking
        writes); the first PostgreSQL node when the lab has no such entry point."""
        write = self.client_endpoints().get("write")
        if write is not None and len(write.hosts) > 1 and write.target_session_attrs is None:
            return write.hosts[0], write.port  # the primary site's router (see client_endpoints)
        if write is not None:
            return write.host, write.port
        return self.address(self.topology.with_role("postgres")[0].name), self.topology.ports.postgres

    def client_path(self, via: str | None = None) -> str:
        """``pooler``, ``direct`` or ``vip``: the path clients take, ``via`` checked against the lab
        (None: the path the write endpoint names)."""
        if via == "vip":
            if vip.address(self.topology) is None:
                raise InputError("this lab has no virtual IP (a vip: {address: ...} section in the topology gives "
                                 "it one, on podman or VMs): use --via pooler or --via direct")
            return via
        found = self.client_endpoints()
        pooled = "write" in found and "write_direct" in found and found["write"] != found["write_direct"]
        if via == "pooler" and not pooled:
            raise InputError("this lab's write endpoint does not go through the pooler (pooler: {enabled: true} "
                             "turns it on; pg_auto_failover's write endpoint stays direct): use --via direct")
        return via or ("pooler" if pooled else "direct")

    def writes_conninfo(self, via: str | None = None) -> dict[str, Any]:
        """psycopg keywords for the writes endpoint as the superuser (``via`` the pooler or
        direct; None: the write endpoint's own path); with several hosts, libpq picks the one that
        takes writes (target_session_attrs=read-write)."""
        path = self.client_path(via)
        if path == "vip":  # the primary's node itself: its PgBouncer, or its PostgreSQL without the pooler
            host, port = self.vip_endpoint(pooled=pooler.enabled(self.topology))
            return {"host": host, "port": port, "dbname": "postgres", **self.connect_kwargs(), **VIP_CLIENT_KEEPALIVES}
        found = self.client_endpoints()
        endpoint = (found.get("write_direct") if path == "direct" else None) or found.get("write")
        if endpoint is None:  # no router: the first PostgreSQL node
            host, port = self.writes_endpoint()
            return {"host": host, "port": port, "dbname": "postgres", **self.connect_kwargs()}
        return {**endpoint.libpq_keywords(), "dbname": "postgres", **self.connect_kwargs()}

    def reads_conninfo(self, via: str | None = None) -> dict[str, Any] | None:
        """psycopg keywords for the replicas' read endpoint as the superuser (``via`` as for
        :meth:`writes_conninfo`); None when the lab has none (no router, no multi-host URI)."""
        found = self.client_endpoints()
        read = found.get("read_direct" if self.client_path(via) == "direct" and "read_direct" in found else "read")
        if read is None:
            return None
        return {**read.libpq_keywords(), "dbname": "postgres", **self.connect_kwargs()}

    def endpoints(self) -> dict[str, str]:
        """Client connection strings (libpq URIs, no password) and the pgpass file that has it."""
        found = self.client_endpoints()
        first = self.topology.with_role("postgres")[0]
        user = SUPERUSER.user
        tls = self.libpq_tls()
        write = found["write"].uri(user, options=tls) if "write" in found else self.dsn(host=self.address(first.name))
        read = found["read"].uri(user, options=tls) if "read" in found else ""
        # Through the pooler or not, the direct paths too (the same as write / read without it).
        write_direct = found["write_direct"].uri(user, options=tls) if "write_direct" in found else write
        read_direct = found["read_direct"].uri(user, options=tls) if "read_direct" in found else read
        # The virtual IP on the primary's node: PostgreSQL, and its PgBouncer ("" when the lab has none).
        address, ports = vip.address(self.topology), self.topology.ports
        vip_direct = self.dsn(port=ports.postgres, host=address) if address else ""
        vip_pooled = self.dsn(port=ports.pooler, host=address) if address and pooler.enabled(self.topology) else ""
        return {"write": write, "read": read, "write_direct": write_direct, "read_direct": read_direct,
                "vip": vip_direct, "vip_pooled": vip_pooled, "pgpass": str(self.pgpass)}

    def vip_endpoint(self, pooled: bool) -> tuple[str, int]:
        """The virtual IP and PostgreSQL's port, or PgBouncer's (``pooled``); the lab must have one."""
        address = vip.address(self.topology)
        if address is None:
            raise InputError("this lab has no virtual IP: add a vip: {address: ...} section to its topology")
        return address, self.topology.ports.pooler if pooled else self.topology.ports.postgres

    def vip_node(self) -> str | None:
        """The data node that holds the virtual IP now, as the nodes themselves say (None: the lab has
        none, or no node holds it; the first when, wrongly, several do)."""
        address = vip.address(self.topology)
        if address is None:
            return None
        holders = [n.name for n in self.topology.with_role("postgres") if self.provider.holds_address(n, address)]
        return holders[0] if holders else None

    def status(self) -> LabStatus:
        """Members, HAProxy routing, every node's services and the last leader change (in a
        two-site lab: the primary site's, and every site's role, leader and lag)."""
        if self.topology.sites:
            return self._sites_status()
        stack = self.stack()
        health = stack.health()
        history = stack.history()
        return LabStatus(
            lab=self.topology.name,
            cluster=self.topology.postgres.scope,
            healthy=health.healthy,
            leader=health.leader,
            members=health.members,
            problems=health.problems,
            haproxy=health.routing,
            services={n.name: self.provider.services(n) for n in self.topology.nodes},
            last_leader_change=history[-1] if history else None,
            endpoints=self.endpoints(),
            uri=stack.uri(),
            warnings=self.certificates().expiring() if self.topology.tls else [],
            poolers=self.poolers(),
            vip_node=self.vip_node(),
        )

    def _sites_status(self) -> LabStatus:
        roles = {name: self.site_role(name) for name in self.topology.sites}
        primary = next((name for name, role in roles.items() if role == "primary"), self.topology.sites[0])
        status = self.site(primary).status()
        views = [self._site_view(name, roles[name], primary) for name in self.topology.sites]
        services = {n.name: self.provider.services(n) for n in self.topology.nodes}
        problems = [f"site {v.name}: {p}" for v in views for p in v.problems]
        # The primary site's members and routing; every node's services, the writes endpoint naming both sites.
        return dataclasses.replace(status, services=services, endpoints=self.endpoints(), healthy=not problems,
                                   problems=problems, sites=views)

    def _site_view(self, name: str, role: sites.SiteRole, primary: str) -> sites.SiteView:
        site = self.site(name)
        stack = site.stack()
        health = stack.health()
        lag = source = None
        problems = list(health.problems)
        if role == "standby":
            found = stack.standby_source() or {}
            source = f"{found.get('host')}:{found.get('port')}"
            conninfo = self.site(primary).writes_conninfo("direct")
            lag = sites.lag_between_sites(conninfo, str(found.get("primary_slot_name") or ""))
            if lag is None or not lag.streaming:
                problems.append(f"its standby leader does not stream from site {primary}")
        elif role == "unknown":
            problems.append("no member of the site's cluster answers")
        return sites.SiteView(name=name, role=role, cluster=site.topology.postgres.scope, healthy=not problems,
                              leader=health.leader, members=health.members, problems=problems, lag=lag,
                              source=source)

    def poolers(self) -> dict[str, PoolerView | None]:
        """Each data node's PgBouncer (clients, servers, pool mode) from ``SHOW POOLS``."""
        if not pooler.enabled(self.topology):
            return {}
        found: dict[str, PoolerView | None] = {}
        for node in self.topology.with_role("postgres"):
            try:
                rows = pooler.pools(self.address(node.name), self.topology.ports.pooler, self.superuser_password(),
                                    self.ca_file)
            except (OSError, psycopg.Error):
                found[node.name] = None
                continue
            found[node.name] = PoolerView(
                clients=sum(r.clients_active for r in rows), waiting=sum(r.clients_waiting for r in rows),
                servers=sum(r.servers_active + r.servers_idle for r in rows),
                pool_mode=pooler.settings(self.topology).pool_mode)
        return found

    def dsn(self, port: int | None = None, host: str | None = None, dbname: str = "postgres") -> str:
        """A URI to one host (default: a PostgreSQL node's port); see :meth:`endpoints` for the
        lab's write and read entry points."""
        host = host or self.address(self.topology.with_role("postgres")[0].name)
        return (f"postgresql://{SUPERUSER.user}@{host}:{port or self.topology.ports.postgres}/{dbname}"
                + uri_query(self.libpq_tls()))

    def connect_kwargs(self) -> dict[str, Any]:
        """libpq keywords for the superuser, for psycopg."""
        return {"user": SUPERUSER.user, "password": self.superuser_password(),
                "connect_timeout": sql.connect_timeout(), **self.libpq_tls()}

    # Lifecycle -------------------------------------------------------------------------------
    def prerequisites(self) -> list[Prerequisite]:
        """The provider's own, and the components' when the nodes run on this machine."""
        needed = self.provider.prerequisites()
        if self.provider.nodes_on_this_machine:
            needed += catalog.on_this_machine(self.topology)
        return needed

    def missing_prerequisites(self) -> list[str]:
        return [f"{p.what} (install {p.package})" for p in self.prerequisites() if not p.present]

    def check_prerequisites(self, on_event: EventSink = ignore_event) -> None:
        """Install what is missing when root (apt + Patroni's venv), else say what to install."""
        missing = self.missing_prerequisites()
        if not missing:
            return
        if not self.provider.nodes_on_this_machine or (not paths.is_root() and not self.only_venv_missing()):
            raise PglabError(
                f"missing on this machine: {'; '.join(missing)}. Install them (as root, `pglab up` "
                "installs them itself), then run `pglab up` again."
            )
        self.install_prerequisites(on_event)

    def only_venv_missing(self) -> bool:
        """A non-root user can build Patroni's venv in their home; apt needs root."""
        return all(p.user_installable for p in self.prerequisites() if not p.present)

    def install_prerequisites(self, on_event: EventSink = ignore_event) -> None:
        """Run playbooks/prepare.yml on this machine: the roles' own package tasks, nothing else.

        It needs no lab directory, so a failure here leaves nothing half-created.
        """
        on_event(Step("installing prerequisites: " + ", ".join(self.missing_prerequisites() or ["none"])))
        with tempfile.TemporaryDirectory(prefix="pglab-prepare-") as tmp:
            inventory = Path(tmp) / "hosts.yml"
            inventory.write_text("all:\n  hosts: {}\n")
            variables = {**render.lab_variables(self.topology, self.provider), "pglab_install_packages": True}
            if not paths.is_root():
                variables.update(stacks.spec(self.topology.stack).user_install_variables() or {})
            result = ansible.run_playbook(paths.playbook("prepare.yml"), inventory, Path(tmp) / "ansible",
                                          on_event, extra_vars=variables)
            if not result.succeeded:
                raise PglabError(self._failure_text("installing prerequisites", result))
        still = self.missing_prerequisites()
        if still:
            raise PglabError(f"still missing after installing prerequisites: {'; '.join(still)}")

    def _checked_and_rendered(self, on_event: EventSink) -> RenderedLab:
        """What `up` and `up --check` do first: the prerequisites and the machines checked, then
        the inventory rendered."""
        on_event(Step("checking prerequisites"))
        self.check_prerequisites(on_event)
        self.check_machines(on_event)
        on_event(Step("rendering the inventory"))
        return self.render()

    def up(self, on_event: EventSink = ignore_event, timeout: float = 180.0) -> UpResult:
        started = time.monotonic()
        rendered = self._checked_and_rendered(on_event)
        on_event(Step(f"creating machines ({self.provider.name})"))
        self.provider.report = lambda text: on_event(Step(text))
        self.provider.create()
        for leftover in self.provider.undo_faults():
            on_event(Step(f"undid a drill's leftover: {leftover}"))
        rendered = self.render()  # connection details can change once machines exist
        on_event(Step("running playbooks/site.yml"))
        try:
            result = ansible.run_playbook(paths.playbook("site.yml"), rendered.inventory,
                                          self.layout.ansible, on_event, extra_vars=self.provider.playbook_vars())
        finally:
            self.provider.deployed()
        if not result.succeeded:
            raise PglabError(self._failure_text("`pglab up`", result))
        parameters: dict[str, str] = {}
        settings_changed: dict[str, Any] = {}
        healths: dict[str | None, Health] = {}
        # Each site's cluster (the lab's one in a one-site lab); the primary site's health is reported.
        names: list[str | None] = [*self.topology.sites] or [None]
        for name, site in zip(names, self.site_labs(), strict=True):
            where = f" in site {name}" if name else ""
            on_event(Step(f"waiting for a healthy cluster{where}"))
            healths[name] = site.wait_healthy(timeout, on_event)
            changed = site.converge_parameters()
            if changed:
                on_event(Step(f"applied postgres.parameters{where}: "
                              + ", ".join(f"{k}={v}" for k, v in changed.items())))
            parameters.update(changed)
            settings = site.converge_stack_settings()
            if settings:
                on_event(Step(f"applied {self.topology.stack}{where}: "
                              + ", ".join(f"{k}={v}" for k, v in settings.items())))
            settings_changed.update(settings)
        health = healths[self.primary_site() if self.topology.sites else None]
        haproxy = self.haproxy_address()
        endpoints = self.endpoints()
        return UpResult(
            seconds=time.monotonic() - started,
            changed=result.changed,
            parameters_changed=parameters,
            settings_changed=settings_changed,
            health=health,
            dsn=endpoints["write"],
            replicas_dsn=endpoints["read"],
            stats_url=stats_url(haproxy, self.topology.ports.haproxy_stats, self.ca_file) if haproxy else "",
            secrets_file=rendered.secrets_file,
            pgpass=rendered.pgpass,
            vip_dsn=endpoints.get("vip_pooled") or endpoints.get("vip") or "",
        )

    def check_up(self, on_event: EventSink = ignore_event) -> UpCheck:
        """`up --check`: the machines' checks, then the lab's playbook in Ansible's check mode
        (`--check --diff`): what `up` would install and change on each node, nothing changed."""
        if not self.provider.keeps_machines:
            raise InputError(f"`pglab up --check` needs machines that exist before `up` (provider: hosts); the "
                             f"{self.provider.name} provider makes its machines in `up` itself: run `pglab up`")
        started = time.monotonic()
        rendered = self._checked_and_rendered(on_event)
        on_event(Step("running playbooks/site.yml in check mode (nothing is changed)"))
        result = ansible.run_playbook(paths.playbook("site.yml"), rendered.inventory, self.layout.ansible,
                                      on_event, extra_vars=self.provider.playbook_vars(), check=True)
        plans = []
        for node in self.topology.nodes:
            changes = [c for c in result.changes if c.host == node.name]
            failure = next((f for f in result.failures if f.host in (node.name, "")), None)
            plans.append(NodePlan(
                node=node.name,
                packages=list(dict.fromkeys(p for c in changes for p in c.packages)),
                tasks=list(dict.fromkeys(c.task for c in changes)),
                files=list(dict.fromkeys(f for c in changes for f in c.files)),
                stopped=f"{failure.task}: {failure.message.splitlines()[0][:300]}" if failure else None))
        return UpCheck(time.monotonic() - started, plans, str(result.log or ""))

    def check_machines(self, on_event: EventSink = ignore_event) -> None:
        """The provider's checks of its machines before anything is changed (busy addresses, a
        server unfit for the lab), raised as its error, one paragraph per problem."""
        on_event(Step(f"checking the machines ({self.provider.name})"))
        problems = self.provider.preflight()
        if problems:
            raise self.provider.preflight_error("\n".join(problems))

    def converge_parameters(self) -> dict[str, str]:
        """Bring the stack's cluster-wide parameters (Patroni's dynamic configuration, ALTER SYSTEM
        on pg_auto_failover's nodes) to the topology's postgres.parameters. Returns what changed; a
        change that needs a restart is left pending for `pglab restart`, never restarted here."""
        stack = self.stack()
        wanted = {name: _setting_text(value) for name, value in self.topology.postgres.parameters.items()}
        current = stack.parameters(wanted)
        changed = {name: value for name, value in wanted.items() if _setting_text(current.get(name)) != value}
        if changed:
            stack.set_parameters(changed)
        return changed

    def converge_stack_settings(self) -> dict[str, Any]:
        """Bring the stack's own settings (Patroni's ttl, synchronous_mode ...: bootstrap alone
        would never change them) to the topology. Returns what changed."""
        return self.stack().converge_settings(self.topology)

    def wait_healthy(self, timeout: float = 120.0, on_event: EventSink = ignore_event) -> Health:
        stack = self.stack()
        last: list[Health] = []

        def healthy() -> tuple[bool, str]:
            last[:] = [stack.health()]
            return last[0].healthy, "; ".join(last[0].problems)

        done, detail, _ = waiting.poll(healthy, timeout, 0.5,
                                       on_wait=lambda text, elapsed: on_event(Waiting(text, elapsed)))
        if not done:
            logs = "\n\n".join(self.provider.logs(node, lines=15) for node in self.topology.with_role("postgres"))
            raise PglabError(f"the cluster was not healthy after {timeout:.0f} s: {detail}.\nRecent logs:\n{logs}")
        return last[0]

    def destroy_warning(self, keep_packages: bool = False) -> str | None:
        """What `destroy` would remove from machines that outlive the lab (servers), for a
        confirmation naming them; None when there is nothing to ask about."""
        self.provider.keep_packages = keep_packages
        return self.provider.destroy_warning()

    def destroy(self, on_event: EventSink = ignore_event, keep_packages: bool = False) -> None:
        on_event(Step(f"destroying lab {self.topology.name} ({self.provider.name})"))
        self.provider.keep_packages = keep_packages
        for leftover in self.provider.undo_faults():
            on_event(Step(f"undid a drill's leftover: {leftover}"))
        self.provider.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # .pglab/ goes too once its last lab is gone

    def _failure_text(self, what: str, result: ansible.PlaybookResult) -> str:
        names = {n.name for n in self.topology.nodes}
        failed_nodes = [self.topology.node(f.host) for f in result.failures[:5] if f.host in names]
        logs = []
        for node in failed_nodes[:2]:
            # Logs are a courtesy: never hide the real failure behind an error reading them.
            with contextlib.suppress(Exception):
                logs.append("Recent logs:\n" + self.provider.logs(node, lines=15))
        return ansible.failure_text(what, result, logs)


def _setting_text(value: Any) -> str:
    """A PostgreSQL setting as text, so 100 and "100", True and "on" compare equal."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "" if value is None else str(value)
