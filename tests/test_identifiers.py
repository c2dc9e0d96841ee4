"""The identifiers and times validator and server share (validators/identifiers.py).

Expected values come from the published definitions, not from the code: the instant cases from FHIR R4's
datatype page (https://hl7.org/fhir/R4/datatypes.html#instant: "The time SHALL specified at least to the second
and SHALL include a time zone", its regular expression, copied below as published, and the calendar), the
identifier and code systems from MedCom's profiles as spec/medcom-standards.md lists them.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kroniker.validators import identifiers
from kroniker.validators.identifiers import parse_instant

# FHIR R4's regular expression for instant, as published.
FHIR_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")

UTC = dt.UTC


def tz(hours: int, minutes: int = 0) -> dt.timezone:
    sign = -1 if hours < 0 else 1
    return dt.timezone(sign * dt.timedelta(hours=abs(hours), minutes=minutes))


@pytest.mark.parametrize(("text", "expected"), [
    # FHIR's own example of an instant.
    ("2015-02-07T13:28:17.239+02:00", dt.datetime(2015, 2, 7, 13, 28, 17, 239000, tzinfo=tz(2))),
    ("2017-01-01T00:00:00Z", dt.datetime(2017, 1, 1, tzinfo=UTC)),
    ("2017-01-01T00:00:00.000Z", dt.datetime(2017, 1, 1, tzinfo=UTC)),
    ("2026-12-12T09:05:00+01:00", dt.datetime(2026, 12, 12, 8, 5, tzinfo=UTC)),
    # Fractional seconds: any number of digits ("\.[0-9]+"); a datetime keeps microseconds.
    ("2015-02-07T13:28:17.5Z", dt.datetime(2015, 2, 7, 13, 28, 17, 500000, tzinfo=UTC)),
    ("2015-02-07T13:28:17.1234567890Z", dt.datetime(2015, 2, 7, 13, 28, 17, 123456, tzinfo=UTC)),
    # The offsets the expression allows, to its ends: ±00:00 through ±13:59, and ±14:00.
    ("2015-02-07T13:28:17-00:00", dt.datetime(2015, 2, 7, 13, 28, 17, tzinfo=UTC)),
    ("2015-02-07T13:28:17+14:00", dt.datetime(2015, 2, 6, 23, 28, 17, tzinfo=UTC)),
    ("2015-02-07T13:28:17-14:00", dt.datetime(2015, 2, 8, 3, 28, 17, tzinfo=UTC)),
    ("2015-02-07T13:28:17+13:59", dt.datetime(2015, 2, 6, 23, 29, 17, tzinfo=UTC)),
    ("2015-02-07T13:28:17+05:30", dt.datetime(2015, 2, 7, 7, 58, 17, tzinfo=UTC)),
    # The smallest year the expression allows, and a 29 February of a leap year.
    ("0001-01-01T00:00:00Z", dt.datetime(1, 1, 1, tzinfo=UTC)),
    ("2024-02-29T12:00:00Z", dt.datetime(2024, 2, 29, 12, tzinfo=UTC)),
    ("2000-02-29T12:00:00Z", dt.datetime(2000, 2, 29, 12, tzinfo=UTC)),
])
def test_an_instant_is_read_as_the_moment_it_names(text: str, expected: dt.datetime) -> None:
    assert parse_instant(text) == expected  # the same moment (aware datetimes compare in UTC)


@pytest.mark.parametrize("text", [
    "2015-02-07T13:28:17",  # no time zone: an instant SHALL include one
    "2015-02-07T13:28+02:00",  # no seconds: SHALL be specified at least to the second
    "2015-02-07T13:28:17.+02:00",  # a decimal point with no digits
    "2015-02-07",  # a date is no instant (nor a dateTime with a time)
    "2015-02",
    "2015",
    "0000-01-01T00:00:00Z",  # year 0000 is outside the expression
    "2015-02-07T24:00:00Z",  # hours 00-23
    "2015-02-07T13:60:00Z",  # minutes 00-59
    "2015-02-07T13:28:61Z",  # seconds 00-60
    "2015-02-07T13:28:17+14:01",  # beyond +14:00
    "2015-02-07T13:28:17+15:00",
    "2015-02-07T13:28:17+0200",  # the offset has a colon
    "2015-02-07T13:28:17+02",
    "20150207T132817Z",  # ISO 8601's basic format is not FHIR's
    "2015-02-07 13:28:17Z",  # the separator is T
    "2015-02-07t13:28:17z",  # upper case T and Z
    "2015-2-7T13:28:17Z",  # two-digit month and day
    "2015-13-07T13:28:17Z",
    "2015-02-00T13:28:17Z",
    " 2015-02-07T13:28:17Z",  # nothing around it
    "2015-02-07T13:28:17Z\n",
    "２０１５-02-07T13:28:17Z",  # ASCII digits only
    # Days the calendar does not have, though the expression's day field (01-31) lets them through.
    "2026-02-29T12:00:00Z",
    "1900-02-29T12:00:00Z",
    "2026-02-30T12:00:00Z",
    "2026-04-31T12:00:00Z",
    "",
])
def test_what_is_no_instant_is_read_as_none(text: str) -> None:
    assert parse_instant(text) is None


@pytest.mark.parametrize("value", [None, 20150207, 1.5, ["2015-02-07T13:28:17Z"], {"value": "2015-02-07T13:28:17Z"}])
def test_a_value_that_is_not_text_is_no_instant(value: object) -> None:
    assert parse_instant(value) is None


def test_a_leap_second_is_an_instant_that_sorts_after_the_59th_second() -> None:
    # The expression allows second 60 (a leap second, as at the end of 2016); a datetime has no room for it.
    leap = parse_instant("2016-12-31T23:59:60Z")
    before = parse_instant("2016-12-31T23:59:59.999Z")
    after = parse_instant("2017-01-01T00:00:00Z")
    assert leap is not None and before is not None and after is not None
    assert before < leap < after


def test_the_same_moment_in_two_zones_is_equal_and_an_hour_apart_is_not() -> None:
    # spec/medcom-standards.md §18.7: the Notes example's 09:05:00Z and 09:05:00+01:00 are one hour apart.
    assert parse_instant("2026-12-12T10:05:00+01:00") == parse_instant("2026-12-12T09:05:00Z")
    a, b = parse_instant("2026-12-12T09:05:00Z"), parse_instant("2026-12-12T09:05:00+01:00")
    assert a is not None and b is not None and a - b == dt.timedelta(hours=1)


@given(st.from_regex(FHIR_INSTANT, fullmatch=True))
def test_every_text_the_fhir_expression_allows_is_read_unless_the_calendar_lacks_its_day(text: str) -> None:
    year, month, day = int(text[:4]), int(text[5:7]), int(text[8:10])
    try:
        dt.date(year, month, day)
    except ValueError:
        assert parse_instant(text) is None
        return
    got = parse_instant(text)
    assert got is not None
    assert got.tzinfo is not None
    if text[17:19] != "60":
        assert (got.year, got.month, got.day, got.hour, got.minute, got.second) == \
            (year, month, day, int(text[11:13]), int(text[14:16]), int(text[17:19]))


@given(st.text(max_size=40))
def test_text_the_fhir_expression_does_not_allow_is_no_instant(text: str) -> None:
    if FHIR_INSTANT.fullmatch(text) is None:
        assert parse_instant(text) is None


def test_the_danish_identifier_systems_are_medcoms() -> None:
    # spec/medcom-standards.md's table of identifier and code systems (the profiles' fixed values).
    assert identifiers.CPR_SYSTEM == "urn:oid:1.2.208.176.1.2"
    assert identifiers.SOR_SYSTEM == "urn:oid:1.2.208.176.1.1"
    assert identifiers.SKS_D == "urn:oid:1.2.208.176.2.4.12"
    assert identifiers.ICPC_2 == "urn:oid:1.2.208.176.2.31"


def test_server_and_validator_use_the_shared_systems() -> None:
    # One definition: the server's metadata and search and the validator's rules name the same objects.
    from kroniker.reference_server import app, audit, metadata
    from kroniker.validators import codes
    from kroniker.validators.rules import prose

    assert app.CPR_SYSTEM is identifiers.CPR_SYSTEM
    assert metadata.CPR is identifiers.CPR_SYSTEM and metadata.SOR is identifiers.SOR_SYSTEM
    assert audit.AGENT_SYSTEMS["citizen"] is identifiers.CPR_SYSTEM
    assert audit.AGENT_SYSTEMS["source"] is identifiers.SOR_SYSTEM
    assert prose.CPR_SYSTEM is identifiers.CPR_SYSTEM
    assert codes.SKS_D is identifiers.SKS_D and codes.ICPC_2 is identifiers.ICPC_2


# The CPR office's century rule (CPR-kontoret, "Personnummeret i CPR-systemet"): the seventh digit and the two-digit
# year give the century. 0-3: 1900-1999; 4 and 9: 2000-2036 for years 00-36, else 1937-1999; 5-8: 2000-2057 for
# years 00-57, else 1858-1899. The expected dates are read off that table.
@pytest.mark.parametrize(("cpr", "born"), [
    ("0101000000", dt.date(1900, 1, 1)),
    ("3112993999", dt.date(1999, 12, 31)),
    ("0101364000", dt.date(2036, 1, 1)),
    ("0101374000", dt.date(1937, 1, 1)),
    ("0101369000", dt.date(2036, 1, 1)),
    ("0101379000", dt.date(1937, 1, 1)),
    ("0101575000", dt.date(2057, 1, 1)),
    ("0101588000", dt.date(1858, 1, 1)),
    ("1506148123", dt.date(2014, 6, 15)),
    ("1506587123", dt.date(1858, 6, 15)),
    ("2902004000", dt.date(2000, 2, 29)),  # 2000 is a leap year
])
def test_a_cpr_number_names_its_birth_date_by_the_century_rule(cpr: str, born: dt.date) -> None:
    assert identifiers.cpr_birth_date(cpr) == born


@pytest.mark.parametrize("cpr", [
    "2902001000",  # 29 February 1900: no leap year
    "3102851234",  # 31 February
    "0013851234",  # month 13
    "010185123",  # nine digits
    "010185-1234",  # the hyphen is how people write it, not the number
    "01018512345",
    "abcdefghij",
    "",
])
def test_what_names_no_birth_date_is_none(cpr: str) -> None:
    assert identifiers.cpr_birth_date(cpr) is None
