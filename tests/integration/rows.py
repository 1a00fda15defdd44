"""Rows written one transaction at a time, for restores judged to the row."""

from __future__ import annotations

import datetime

from pglab import sql
from pglab.lab import Lab


def write_rows_and_pick_a_target(lab: Lab, rows: int, first_discarded: int) -> datetime.datetime:
    """Write rows 1..``rows`` into ``restore_rows``, one transaction each (row i+1 began after row i
    committed), and return the moment just before row ``first_discarded`` began: a restore to it
    keeps exactly the rows before that one."""
    with sql.session(**lab.writes_conninfo()) as conn:
        conn.execute("DROP TABLE IF EXISTS restore_rows")
        conn.execute("CREATE TABLE restore_rows (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        for i in range(1, rows + 1):
            conn.execute("INSERT INTO restore_rows (id) VALUES (%s)", (i,))
        row = conn.execute("SELECT at FROM restore_rows WHERE id = %s", (first_discarded,)).fetchone()
        assert row is not None
    return row[0] - datetime.timedelta(microseconds=1)
