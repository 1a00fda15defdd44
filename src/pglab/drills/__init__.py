"""Failure rehearsals: one frame (warm-up, markers, clients, timing, tally), the fault kinds, the
clients and their workloads, the invariants their history must keep, and the report."""
