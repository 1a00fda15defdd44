"""Partitions of two labs on one machine never share a conntrack mark: marks are global to the
machine, and a test run that cut off its pg1 while another run cut off its own pg1 saw its node's
connections to itself dropped by the other lab's rules (same mark, another address)."""

from __future__ import annotations

from pglab.providers.nft import MARK_BASE, LabFirewall


def test_each_lab_and_node_gets_its_own_mark() -> None:
    ours, theirs = LabFirewall("itest-1a4c70ad"), LabFirewall("itest-58c7b9f8")
    marks = {ours.mark("pg1"), theirs.mark("pg1"), ours.mark("pg2"), theirs.mark("pg2"), ours.mark("pg3")}
    assert len(marks) == 5
    assert ours.mark("pg1") == LabFirewall("itest-1a4c70ad").mark("pg1")  # a later `start` heals the same cut
    assert all(mark & 0xFF000000 == MARK_BASE for mark in marks)
