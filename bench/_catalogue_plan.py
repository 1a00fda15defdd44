"""What the fault catalogue runs: its faults (each a `pglab drill` kind with the options it is
measured with) and its configurations (a stack, its settings, and which faults it answers).

Pure data and the choice of a subset: no lab is touched here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One row of the table: a drill kind and the options it runs with."""

    kind: str
    options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The command a reader would type, as the row's title."""
        return " ".join((self.kind, *self.options))


@dataclass(frozen=True)
class Config:
    """One column: a lab of ``stack`` with ``settings`` (dotted topology paths and YAML values),
    running ``kinds`` (None: every fault of the catalogue)."""

    name: str
    title: str
    stack: str
    settings: tuple[tuple[str, str], ...] = ()
    kinds: tuple[str, ...] | None = None

    def runs(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


# The questions users file, then the whole-node faults for reference. The options are the ones the
# questions name (5 % loss, 50 ms, twice the lease); the held faults keep their kinds' defaults.
FAULTS: tuple[Fault, ...] = (
    Fault("disk-full", ("--for", "20")),
    Fault("slow-disk", ("--iops", "10", "--for", "10")),
    Fault("cpu-starve", ("--percent", "5", "--for", "10")),
    Fault("memory", ("--limit", "256")),
    Fault("latency", ("--delay", "50", "--for", "20")),
    Fault("loss", ("--percent", "5", "--for", "20")),
    Fault("dcs-loss",),
    Fault("postgres-kill",),
    Fault("pgdata-lost",),
    Fault("crash",),
    Fault("hang",),
    Fault("partition",),
)

CONFIGS: tuple[Config, ...] = (
    Config("patroni", "Patroni (asynchronous)", "patroni"),
    Config("patroni-sync", "Patroni, `synchronous_mode`", "patroni", (("patroni.synchronous_mode", "true"),)),
    # failsafe_mode only changes what a leader does without its DCS.
    Config("patroni-failsafe", "Patroni, `failsafe_mode`", "patroni", (("patroni.failsafe_mode", "true"),),
           kinds=("dcs-loss",)),
    Config("pg_auto_failover", "pg_auto_failover", "pg_auto_failover"),
)


@dataclass(frozen=True)
class Cell:
    """One drill to run: a configuration, a fault, the run's number."""

    config: Config
    fault: Fault
    run: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.config.name, self.fault.kind, self.run)


def choose(names: str | None, known: dict[str, object], what: str) -> list[str]:
    """The comma-separated ``names`` (None: all of ``known``, in order); ValueError names the unknown."""
    if names is None:
        return list(known)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise ValueError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return [n for n in known if n in chosen]  # the catalogue's order, whatever the command line's


def plan(config_names: str | None = None, kind_names: str | None = None, count: int = 1) -> list[Cell]:
    """Every cell to run, configuration by configuration (one lab each), fault by fault."""
    configs = {c.name: c for c in CONFIGS}
    faults = {f.kind: f for f in FAULTS}
    chosen_configs = choose(config_names, dict(configs), "configuration")
    chosen_kinds = choose(kind_names, dict(faults), "fault")
    return [Cell(configs[c], faults[k], run) for c in chosen_configs for k in chosen_kinds
            if configs[c].runs(k) for run in range(1, count + 1)]


def remaining(cells: list[Cell], done: set[tuple[str, str, int]]) -> list[Cell]:
    """The cells not measured yet (``done``: the results file's), in order: what --resume runs."""
    return [c for c in cells if c.key not in done]
