"""Reading JSON input within limits, shared by the validator (validators/source.py) and the DPIA register
(dpia/reading.py): each reports in its own finding codes, but reads, decodes and explains JSON errors one way."""

from __future__ import annotations

import codecs
import json
import os
from typing import BinaryIO


class TooLarge(Exception):
    """More bytes than the limit; `size` is the file's size where known, else the limit plus one."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, over the limit of {limit}")
        self.size, self.limit = size, limit


def read_file(name: str | os.PathLike[str], max_bytes: int) -> bytes:
    """A file's bytes, never more than max_bytes: a larger file is refused before it is read (TooLarge);
    OSError as raised by the system."""
    with open(name, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise TooLarge(size, max_bytes)
        data = fh.read(max_bytes + 1)  # a file may grow while it is read
    if len(data) > max_bytes:
        raise TooLarge(len(data), max_bytes)
    return data


def read_stream(stream: BinaryIO, max_bytes: int) -> bytes:
    """A stream's bytes, reading only one byte past the limit (TooLarge then)."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(len(data), max_bytes)
    return data


class NotUtf8(Exception):
    """Bytes that are not UTF-8: UTF-16 (a byte order mark) or an invalid sequence at offset/line/column."""

    def __init__(self, utf16: bool = False, offset: int = 0, line: int = 1, column: int = 1) -> None:
        super().__init__("UTF-16" if utf16 else f"invalid UTF-8 at byte {offset}")
        self.utf16, self.offset, self.line, self.column = utf16, offset, line, column


def decode_utf8(raw: bytes) -> str:
    """JSON between systems is UTF-8 (RFC 8259 §8.1); a UTF-8 byte order mark is dropped, UTF-16 refused
    (json.loads would guess it from bytes)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotUtf8(utf16=True)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise NotUtf8(offset=exc.start, line=line, column=column) from None


# json's own messages, said in the catalogue's words (message keys of validators/messages).
_JSON_DETAILS = {
    "Expecting value": "@json-expecting-value",
    "Expecting property name enclosed in double quotes": "@json-expecting-name",
    "Expecting ',' delimiter": "@json-expecting-comma",
    "Expecting ':' delimiter": "@json-expecting-colon",
    "Unterminated string starting at": "@json-unterminated-string",
    "Invalid control character at": "@json-control-character",
    "Invalid \\escape": "@json-bad-escape",
    "Invalid \\uXXXX escape": "@json-bad-escape",
    "Extra data": "@json-extra-data",
}


def json_detail(exc: json.JSONDecodeError) -> str:
    """What json found wrong, as a catalogue text reference where there is one."""
    return _JSON_DETAILS.get(exc.msg, exc.msg)
