"""A drill kind plugs in with its own module and one registry entry: a fake kind, registered here
only, is offered by `pglab drill` with its own option, and the frame runs its steps in order
(prepare, inject, recover, judge), undoing the fault even when the injection fails or the drill is
interrupted. No process is started: the lab, its connections and the clients are stand-ins."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from pglab import cli
from pglab.drills import frame, kinds
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.probe import Attempt
from pglab.drills.result import DrillResult
from pglab.errors import InputError, PglabError
from pglab.lab import Lab
from tests.conftest import write_topology


@dataclass
class Meteor(DrillKind):
    """A made-up fault with an option of its own."""

    name = "meteor"
    summary = "a meteor hits the leader's rack"
    options = (Option("size", "The meteor's size in metres.", type=int, default=10, low=1, high=100),
               Option("duration", "Seconds the dust stays.", type=float, default=5.0, flag="--for"))
    size: int = 10
    duration: float = 5.0
    steps: list[str] = field(default_factory=list)
    fails: ClassVar[BaseException | None] = None  # what inject raises, if anything

    def check(self, lab: Lab) -> None:
        if self.size > 50:  # as a kind refuses what its provider or kernel cannot produce
            raise InputError("a meteor over 50 m needs another provider")

    def prepare(self, drill: Drill) -> None:
        self.steps.append("prepare")

    def inject(self, drill: Drill) -> Done:
        self.steps.append("inject")
        if self.fails is not None:
            raise self.fails
        return Done(f"a {self.size} m meteor hit {drill.target}", "meteor landed")

    def recover(self, drill: Drill) -> str | None:
        self.steps.append("recover")
        return f"{drill.target} rebuilt"

    def judge(self, drill: Drill, result: DrillResult) -> None:
        self.steps.append("judge")


@pytest.fixture
def meteor(monkeypatch: pytest.MonkeyPatch) -> type[Meteor]:
    monkeypatch.setitem(kinds.KINDS, "meteor", Meteor)
    monkeypatch.setattr(Meteor, "fails", None)
    return Meteor


def test_the_cli_offers_a_registered_kind_with_its_own_option(meteor: type[Meteor], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    listing = CliRunner().invoke(cli.main, ["drill", "--help"]).output
    assert "meteor" in listing and "a meteor hits the leader's rack" in listing
    own = CliRunner().invoke(cli.main, ["drill", "meteor", "--help"]).output
    assert "--size" in own and "--for" in own and "--clients" in own and "--count" in own
    assert "--size" not in CliRunner().invoke(cli.main, ["drill", "crash", "--help"]).output
    ran: list[DrillKind] = []

    def run(lab: Any, kind: DrillKind, *args: Any, **kwargs: Any) -> DrillResult:
        ran.append(kind)
        raise PglabError("stop here")  # the CLI's part is done once the frame has the kind

    monkeypatch.setattr(frame, "run", run)
    path = str(write_topology(tmp_path))
    result = CliRunner().invoke(cli.main, ["drill", "meteor", "--size", "42", "--for", "2.5", "-f", path])
    assert "stop here" in result.output
    [kind] = ran
    assert isinstance(kind, Meteor) and (kind.size, kind.duration) == (42, 2.5)
    for size, words in (("0", "0 is not in the range"), ("60", "needs another provider")):
        refused = CliRunner().invoke(cli.main, ["drill", "meteor", "--size", size, "-f", path])
        assert refused.exit_code == 2 and words in refused.output, refused.output
    assert len(ran) == 1 and not (tmp_path / ".pglab").exists()  # refused before the lab was touched


class FakeConnection:
    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, *args: Any) -> list[tuple[int]]:
        return [(1,), (2,), (3,)]  # the rows read back: every write kept


class FakeClients:
    """Three acknowledged writes, one before the fault and two after."""

    def __init__(self, *args: Any) -> None:
        now = time.monotonic()
        self.stopped = False
        self.attempts = [Attempt(1, now - 1, now - 0.9, True), Attempt(2, now + 1, now + 1.1, True),
                         Attempt(3, now + 2, now + 2.1, True)]
        self.crashed = None
        self.freshness = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True

    def wait_succeeding(self, since: float, hold: float, timeout: float) -> bool:
        return True

    def last_error(self) -> str:
        return "none"

    def writes(self) -> list[Attempt]:
        return self.attempts

    def reads(self) -> dict[str, list[Attempt]]:
        return {}

    def load_figures(self, seconds: float) -> None:
        return None


class QuietWatch:
    """The cluster's watch, seeing nothing (no stack to ask)."""

    def __init__(self, *_: Any) -> None:
        pass

    def start(self) -> QuietWatch:
        return self

    def stop(self) -> None:
        pass

    def worst_lag(self, _fault_at: float) -> dict[str, Any]:
        return {}

    def healthy_again(self, *_: Any) -> None:
        return None


class QuietListener:
    """The stack's log, saying nothing."""

    def __init__(self, *_: Any) -> None:
        pass

    def listen(self) -> None:
        pass

    def said(self, _leaders: Any) -> None:
        return None


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Any:
    made: list[FakeClients] = []

    def clients(*args: Any) -> FakeClients:
        made.append(FakeClients())
        return made[-1]

    monkeypatch.setattr(frame.sql, "session", lambda *_, **__: FakeConnection())
    monkeypatch.setattr(frame.background_load, "lag", lambda _: {})
    monkeypatch.setattr(frame, "Clients", clients)
    monkeypatch.setattr(frame, "Watch", QuietWatch)
    monkeypatch.setattr(frame, "Listener", QuietListener)
    conninfo = {"host": "127.0.0.1", "port": 5000}
    return SimpleNamespace(wait_healthy=lambda *_: SimpleNamespace(leader="pg1"),
                           writes_conninfo=lambda via=None: conninfo, client_path=lambda via=None: via or "direct",
                           reads_conninfo=lambda via=None: None, made=made)


def test_the_frame_runs_the_steps_in_order(meteor: type[Meteor], lab: Any) -> None:
    kind = meteor(size=3)
    result = frame.run(lab, kind)
    assert kind.steps == ["prepare", "inject", "recover", "judge"]
    assert result.ok and result.kind == "meteor" and result.node == "pg1" and result.tally.acknowledged == 3
    assert result.operations == ["a 3 m meteor hit pg1", "pg1 rebuilt"]
    assert [m.what for m in result.markers][:2] == ["meteor pg1", "meteor landed"]
    assert result.as_json()["checks"] == {"lost": 0, "split_brain": 0}  # the frame's invariants, for every kind


def test_the_fault_is_undone_when_the_injection_fails(meteor: type[Meteor], lab: Any) -> None:
    meteor.fails = PglabError("the meteor missed")
    kind = meteor()
    result = frame.run(lab, kind)
    assert kind.steps == ["prepare", "inject", "recover", "judge"]
    assert not result.ok and result.problem == "the meteor did not complete: the meteor missed"


def test_the_fault_is_undone_when_the_drill_is_interrupted(meteor: type[Meteor], lab: Any) -> None:
    meteor.fails = KeyboardInterrupt()
    kind = meteor()
    with pytest.raises(KeyboardInterrupt):
        frame.run(lab, kind)
    assert kind.steps == ["prepare", "inject", "recover"]
    assert lab.made[0].stopped  # and the clients were stopped
