"""Read HAProxy's stats page (CSV) to see which servers each listener routes to."""

from __future__ import annotations

import base64
import csv
import io
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    proxy: str
    server: str
    status: str  # UP, DOWN, MAINT, "no check" ...


def backends(address: str, port: int, user: str, password: str, timeout: float = 2.0) -> list[Backend]:
    request = urllib.request.Request(f"http://{address}:{port}/;csv")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [
        Backend(row["pxname"], row["svname"], row["status"])
        for row in rows
        if row["svname"] not in ("FRONTEND", "BACKEND")
    ]
