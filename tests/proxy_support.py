"""People of a given age and proxies between them, for the proxy and embargo tests (tests/test_server_proxies.py and
the role matrix, tests/test_server_access.py).

A CPR number is made from a birth date by the CPR office's century rule as published (CPR-kontoret, "Personnummeret
i CPR-systemet"): the seventh digit 0-3 for a birth in the 1900s, 4 for 2000-2036. The numbered patients of
server_support do not follow it (their seventh digit is 7-9, which names the 1800s or the 2040s), so a test that
needs an age makes its people here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from typing import Any

import httpx

from tests.server_support import ADMIN, Patient, Server

_serial = itertools.count(1)
DANISH = zoneinfo.ZoneInfo("Europe/Copenhagen")


def born(day: dt.date, given: str = "Test", family: str = "Person") -> Patient:
    """A person born on that day, with a serial number no other test uses."""
    if not 1900 <= day.year <= 2036:
        raise ValueError("these tests make people born 1900-2036")
    seventh = 2 if day.year < 2000 else 4
    n = next(_serial) % 1000
    return Patient(f"{day:%d%m%y}{seventh}{n:03d}", (given,), family)


def today() -> dt.date:
    return dt.datetime.now(DANISH).date()


def aged(years: int, days: int = 0, given: str = "Test", family: str = "Person") -> Patient:
    """A person who turned `years` old `days` days ago (days < 0: who turns `years` in -days days)."""
    t = today()
    day = t.replace(year=t.year - years) if not (t.month == 2 and t.day == 29) else dt.date(t.year - years, 2, 28)
    return born(day - dt.timedelta(days=days), given, family)


def birthday_begins(day: dt.date) -> str:
    """When a Danish day begins, as the server lists it (naive UTC, ISO)."""
    start = dt.datetime.combine(day, dt.time(), DANISH).astimezone(dt.UTC).replace(tzinfo=None)
    return start.isoformat()


def register(server: Server, kind: str, holder: Patient, subject: Patient, **period: str) -> httpx.Response:
    body: dict[str, Any] = {"kind": kind, "holder": holder.cpr, "subject": subject.cpr, **period}
    return server.request("POST", "/admin/proxies", ADMIN, json=body)


def registered(server: Server, kind: str, holder: Patient, subject: Patient, **period: str) -> dict[str, Any]:
    r = register(server, kind, holder, subject, **period)
    assert r.status_code == 201, r.text
    return r.json()


def proxy_rows(server: Server) -> int:
    """How many proxies the database holds (ended ones too)."""
    import sqlalchemy as sa

    with server.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM proxies")).scalar_one())
