"""Danish identifier systems and FHIR's instant, shared by the validator and the reference server.

The engine side owns this module so the server may import it (the engine never imports the server).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

# Identifier systems (OIDs under Denmark's arc 1.2.208, as MedCom's and DK Core's profiles name them).
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"  # CPR, the civil registration number of a person
SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"  # SOR, the register of health care organisations


def cpr_birth_date(cpr: str) -> dt.date | None:
    """The birth date a CPR number names, by the CPR office's century rule; None when it names no date.

    The first six digits are the day, month and two-digit year; the seventh digit with the year gives the century
    (CPR-kontoret, "Personnummeret i CPR-systemet"): 0-3, any year: 1900s; 4 and 9: years 00-36 are 2000s,
    37-99 1900s; 5-8: years 00-57 are 2000s, 58-99 1800s. The check digit is not asked (numbers without one
    have been issued since 2007)."""
    if not isinstance(cpr, str) or not re.fullmatch(r"[0-9]{10}", cpr):
        return None
    day, month, yy, seventh = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:
        century = 2000 if yy <= 57 else 1800
    try:
        return dt.date(century + yy, month, day)
    except ValueError:
        return None

# Code systems.
SKS_D = "urn:oid:1.2.208.176.2.4.12"  # SKS, the diagnosis classification (D + a WHO ICD-10 code)
ICPC_2 = "urn:oid:1.2.208.176.2.31"  # ICPC-2, the Danish general practitioners' classification

# FHIR R4's instant (https://hl7.org/fhir/R4/datatypes.html#instant), its regular expression with names for
# the parts. A dateTime that has a time is written the same way (the time zone is required once there is a
# time), so the same reading serves both.
_INSTANT = re.compile(
    r"(?P<year>[0-9](?:[0-9](?:[0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
    r"-(?P<month>0[1-9]|1[0-2])-(?P<day>0[1-9]|[1-2][0-9]|3[0-1])"
    r"T(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9]):(?P<second>[0-5][0-9]|60)(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<zone>Z|(?P<sign>[+-])(?P<offset>(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))")


def parse_instant(value: Any) -> dt.datetime | None:
    """A FHIR instant (or a dateTime with a time) as an aware datetime; None for anything else.

    None for: a non-string, a date or dateTime without a time, no time zone, no seconds, an offset beyond
    ±14:00, a day the calendar does not have (2026-02-30). Fractional seconds may have any number of digits;
    a datetime keeps six. FHIR's expression admits a leap second (:60), which a datetime cannot hold: it is
    read as the last microsecond before the next minute, so it still sorts after :59.
    """
    if not isinstance(value, str):
        return None
    m = _INSTANT.fullmatch(value)
    if m is None:
        return None
    second = int(m["second"])
    micro = int((m["fraction"] or "")[:6].ljust(6, "0"))
    if second == 60:
        second, micro = 59, 999_999
    if m["zone"] == "Z":
        zone = dt.UTC
    else:
        hours, minutes = m["offset"].split(":")
        offset = dt.timedelta(hours=int(hours), minutes=int(minutes))
        zone = dt.timezone(-offset if m["sign"] == "-" else offset)
    try:
        return dt.datetime(int(m["year"]), int(m["month"]), int(m["day"]), int(m["hour"]), int(m["minute"]),
                           second, micro, tzinfo=zone)
    except ValueError:  # a day the month does not have
        return None
