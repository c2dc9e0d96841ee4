"""What a request carries, read with explicit bounds before any library parses it: bodies, query strings and
_search forms, JSON bodies, ids in paths, dates and text. Anything outside the bounds is a BadInput with an HTTP
status and a message key; app.py answers it as an OperationOutcome (and audits it) like any other refusal.

The bounds are Settings fields (docs/server.md, "Limits"); every check here is linear in the input's size.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import parse_qsl

from kroniker.reference_server.settings import Settings

# Danish citizens and clinicians mean days as they are lived in Denmark, with summer time.
DANISH_TIME = zoneinfo.ZoneInfo("Europe/Copenhagen")

# FHIR's id type (http://hl7.org/fhir/R4/datatypes.html#id): anything else cannot name a stored resource.
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# FHIR strings hold no characters below U+0020 but tab, CR and LF (datatypes.html#string), and Unicode has no
# lone surrogates: Python can hold both (JSON's \u0000 and \ud800), databases and UTF-8 cannot.
BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# What the nesting count looks at: an escape (skipped: it may be \" inside a string), a quote, a bracket.
JSON_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: int() also takes "²"-free Unicode digits, "1_000"
FORM = "application/x-www-form-urlencoded"
# A token search value's parts (FHIR search: `code` or `system|code`), as long as the store keeps them
# (document_events.code and .system): no whitespace, no second "|", no comma (commas separate values).
TOKEN_CODE = re.compile(r"[^\s|,]{1,64}")
TOKEN_SYSTEM = re.compile(r"[^\s|,]{1,200}")


class BadInput(Exception):
    """A request outside what the server takes: status, message key, FHIR issue code and the message's values."""

    def __init__(self, status: int, key: str, code: str = "invalid", **params: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.code, self.params = status, key, code, params


# -- bodies ------------------------------------------------------------------------------------------------

async def read_body(stream: AsyncIterable[bytes], declared: str | None, limit: int) -> bytes:
    """The body, read only up to `limit` bytes (a declared or streamed length beyond it is 413)."""
    if declared is not None and declared.strip().isdigit() and int(declared.strip()) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BadInput:
    if limit == 0:
        return BadInput(413, "no-body", "too-long")
    return BadInput(413, "too-large", "too-long", limit=limit)


def json_object(body: bytes, settings: Settings) -> dict[str, Any]:
    """A JSON object of bounded nesting whose every key and string is text a database can keep."""
    data = json_value(body, settings)
    if not isinstance(data, dict):
        raise BadInput(400, "not-json")
    return data


def json_value(body: bytes, settings: Settings) -> Any:
    """Any JSON value (an object, an array, ...) of bounded nesting whose every key and string is text a
    database can keep."""
    depth = json_depth(body)
    if depth > settings.max_json_depth:
        raise BadInput(400, "too-deep", limit=settings.max_json_depth)
    import json

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):  # ValueError: bad JSON, or an integer of more than 4,300 digits
        raise BadInput(400, "not-json") from None
    where = bad_text_in(data)
    if where is not None:
        raise BadInput(400, "bad-text", field=where)
    return data


def json_depth(body: bytes) -> int:
    """How deeply the JSON text nests arrays and objects, counted over the bytes before json.loads sees them
    (its C parser recurses and ends in RecursionError). One pass; brackets inside strings do not count."""
    depth = deepest = 0
    in_string = False
    for m in JSON_TOKEN.finditer(body):
        token = m.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def bad_text_in(data: Any, path: str = "") -> str | None:
    """Where (a dotted path) the first string or key that no database can store is, or None. Iterative: the
    caller has bounded the depth, not Python's stack."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if BAD_TEXT.search(node):
                return where or "(value)"
        elif isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str) and BAD_TEXT.search(k):
                    return f"{where}.{_printable(k)}" if where else _printable(k)
                stack.append((v, f"{where}.{k}" if where else str(k)))
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
    return None


def _printable(text: str) -> str:
    return BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# -- query strings and _search forms -------------------------------------------------------------------------

def parameters(raw: bytes, settings: Settings, *, in_url: bool = True) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query string (in_url) or a form, in order; the string is measured and its
    separators counted before it is split (check_parameters then bounds the pairs). A form's length is its
    body's, bounded as that was read."""
    if in_url and len(raw) > settings.max_query_bytes:
        raise BadInput(414, "query-too-long", "too-long", limit=settings.max_query_bytes)
    if raw.count(b"&") + 1 > settings.max_query_params:
        raise BadInput(400, "too-many-params", "too-long", limit=settings.max_query_params)
    try:
        items = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict",
                          max_num_fields=settings.max_query_params)
    except (UnicodeDecodeError, ValueError):  # percent-encoded bytes that are not UTF-8
        raise BadInput(400, "bad-text", field="(query)") from None
    return check_parameters(items, settings)


def check_parameters(items: list[tuple[str, str]], settings: Settings) -> list[tuple[str, str]]:
    """The pairs, refused when there are too many, when one name repeats too often, when a value holds too many
    comma-separated values, or when a name or value holds what no database stores (NUL, control characters)."""
    if len(items) > settings.max_query_params:
        raise BadInput(400, "too-many-params", "too-long", limit=settings.max_query_params)
    counts: dict[str, int] = {}
    for name, value in items:
        if BAD_TEXT.search(name) or BAD_TEXT.search(value):
            raise BadInput(400, "bad-text", field=_printable(name)[:64])
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > settings.max_param_repeats:
            raise BadInput(400, "param-repeated", "too-long", name=name[:64], limit=settings.max_param_repeats)
        if value.count(",") + 1 > settings.max_param_values:
            raise BadInput(400, "too-many-values", "too-long", name=name[:64], limit=settings.max_param_values)
    return items


def media_type(header: str | None) -> str:
    """The media type of a Content-Type or Accept entry, without parameters, in lower case (RFC 9110 §8.3.1:
    type and subtype are case-insensitive)."""
    return (header or "").split(";", 1)[0].strip().lower()


def form(body: bytes, content_type: str | None, settings: Settings) -> list[tuple[str, str]]:
    """A _search form (FHIR: application/x-www-form-urlencoded only; multipart is refused, never parsed)."""
    if media_type(content_type) != FORM:
        raise BadInput(415, "form-media-type", "not-supported", found=media_type(content_type) or "(none)")
    return parameters(body, settings, in_url=False)


def whole_number(name: str, value: str) -> int:
    """_count and _offset: ASCII digits, at most nine (a bound any database and list index takes)."""
    if not WHOLE_NUMBER.fullmatch(value):
        raise BadInput(400, "bad-count", name=name)
    return int(value)


def token(name: str, value: str) -> list[tuple[str | None, str]]:
    """A token parameter's values (commas: OR), each `code` (any system) or `system|code`: (system or None, code).
    Anything else (an empty value, `system|` or `|code`, a second "|", a code or system longer than the store
    keeps) is refused as 400, never searched for."""
    out: list[tuple[str | None, str]] = []
    for part in value.split(","):
        system, sep, code = part.rpartition("|")
        if not TOKEN_CODE.fullmatch(code) or (sep and not TOKEN_SYSTEM.fullmatch(system)):
            raise BadInput(400, "bad-search-token", name=name[:64], found=_printable(part)[:80])
        out.append((system if sep else None, code))
    return out


def resource_id(value: str, key: str) -> str:
    """An id from the path; one that is not a FHIR id cannot be stored here: `key` (not found)."""
    if not ID.fullmatch(value):
        raise BadInput(404, key, "not-found", id=_printable(value)[:64])
    return value


# -- dates -----------------------------------------------------------------------------------------------------

def danish_day_start(day: dt.date) -> dt.datetime | None:
    """When a Danish calendar day begins, as naive UTC (the store's time); None before the calendar's start."""
    try:
        return dt.datetime.combine(day, dt.time(), DANISH_TIME).astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        return None


def danish_day_end(day: dt.date) -> dt.datetime | None:
    """When a Danish calendar day ends (the next one begins), as naive UTC; None for the calendar's last day."""
    try:
        return danish_day_start(day + dt.timedelta(days=1))
    except OverflowError:
        return None


def calendar_date(value: str) -> dt.date | None:
    """A FHIR date YYYY-MM-DD, or None when the value is not one."""
    if not DATE.fullmatch(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None
