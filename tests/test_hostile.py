"""Hostile input through the real command: each case gives a finding and exit status 1 or 2, never a traceback,
a hang (the subprocess has a generous timeout, not a latency bound), or content from outside the input."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kroniker.validators.packages import PackageCache
from tests.builders import shared_note
from tests.hostile_documents import attribute_bomb, element_flood, key_flood, narrative_attribute_bomb

SECRET = Path("/etc/passwd")


def _deep_json(tmp: Path) -> Path:
    p = tmp / "deep.json"
    p.write_text('{"resourceType": "Bundle", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return p


def _too_big(tmp: Path) -> Path:
    p = tmp / "big.json"
    with open(p, "w") as fh:  # 11 MiB, over the default 10 MiB limit
        fh.write('{"resourceType": "Bundle", "pad": "' + "x" * (11 * 1024 * 1024) + '"}')
    return p


def _billion_laughs(tmp: Path) -> Path:
    lol = "".join(f'<!ENTITY lol{i} "{"&lol" + str(i - 1) + ";" * 1 if i else "lol"}' + (
        f'&lol{i - 1};' * 9 if i else "") + '">' for i in range(10))
    p = tmp / "lol.xml"
    p.write_text(f'<?xml version="1.0"?><!DOCTYPE Bundle [{lol}]>'
                 '<Bundle xmlns="http://hl7.org/fhir"><id value="&lol9;"/></Bundle>')
    return p


def _xxe(tmp: Path) -> Path:
    p = tmp / "xxe.xml"
    p.write_text(f'<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY x SYSTEM "file://{SECRET}">]>'
                 '<Bundle xmlns="http://hl7.org/fhir"><id value="&x;"/></Bundle>')
    return p


def _invalid_utf8(tmp: Path) -> Path:
    p = tmp / "latin1.json"
    raw = json.dumps(shared_note(), ensure_ascii=False).encode("utf-8")
    p.write_bytes(raw.replace("Lænderyg".encode(), "Lænderyg".encode("latin-1")))
    return p


def _empty(tmp: Path) -> Path:
    p = tmp / "empty.json"
    p.write_bytes(b"")
    return p


def _array(tmp: Path) -> Path:
    p = tmp / "array.json"
    p.write_text(json.dumps([shared_note()]))
    return p


def _unknown_type(tmp: Path) -> Path:
    p = tmp / "unknown.json"
    p.write_text(json.dumps({"resourceType": "Kronikerpakke", "id": "x"}))
    return p


def _fifty_mb_note(tmp: Path) -> Path:
    note = base64.b64encode(b"<p>" + b"x" * (38 * 1024 * 1024) + b"</p>").decode()  # ~50 MB of base64
    doc = shared_note()
    doc["entry"][1]["resource"]["extension"][0]["valueAttachment"]["data"] = note
    p = tmp / "fifty.json"
    p.write_text(json.dumps(doc))
    return p


def _written(name: str, make: Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        p = tmp / name
        p.write_bytes(make())
        return p
    return write


CASES: list[tuple[str, Callable[[Path], Path], str, dict[str, str]]] = [
    ("deeply nested JSON", _deep_json, "too-deep", {}),
    ("over the size limit", _too_big, "too-large", {}),
    ("billion laughs", _billion_laughs, "xml-syntax", {}),
    ("external entity", _xxe, "xml-syntax", {}),
    ("invalid UTF-8", _invalid_utf8, "encoding", {}),
    ("empty file", _empty, "json-syntax", {}),
    ("an array, not an object", _array, "json-syntax", {}),
    ("unknown resourceType", _unknown_type, "unknown-resource-type", {}),
    ("50 MB base64 note, default limit", _fifty_mb_note, "too-large", {}),
    ("50 MB base64 note, limit raised", _fifty_mb_note, "too-large", {"KRONIKER_MAX_BYTES": str(200 * 2**20)}),
    # issue 9: 3,000 attributes took 100 s, 100,000 (1 MB) kept a server worker busy for 18 minutes
    ("3,000 attributes on the root", _written("a3k.xml", lambda: attribute_bomb(3_000)), "too-large", {}),
    ("100,000 attributes on the root", _written("a100k.xml", lambda: attribute_bomb(100_000)), "too-large", {}),
    ("attribute limit raised", _written("a100.xml", lambda: attribute_bomb(100)), "xml-structure",
     {"KRONIKER_MAX_XML_ATTRIBUTES": "1000"}),
    ("100,000 XML elements", _written("e100k.xml", lambda: element_flood(100_000)), "too-large", {}),
    ("100,000 JSON members", _written("k100k.json", lambda: key_flood(100_000)), "too-large", {}),
    ("element limit raised", _written("k100k.json", lambda: key_flood(100_000)), "unknown-element",
     {"KRONIKER_MAX_ELEMENTS": "200000"}),
    ("100,000 attributes in the narrative", _written("n100k.json", lambda: narrative_attribute_bomb(100_000)),
     "invariant:txt-1", {}),
]


@pytest.mark.parametrize(("label", "make", "code", "extra_env"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input(label: str, make: Callable[[Path], Path], code: str, extra_env: dict[str, str],
                       tmp_path: Path, package_cache: PackageCache) -> None:
    path = make(tmp_path)
    env = {**os.environ, "KRONIKER_FHIR_PACKAGES": str(package_cache.root), "KRONIKER_HOME": str(tmp_path / "h"),
           **extra_env}
    env.pop("KRONIKER_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "kroniker", "validate", "--format", "json", str(path)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode in (1, 2), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    outcome = json.loads(proc.stdout)
    codes = {c["code"] for i in outcome["issue"] for c in i["details"]["coding"]}
    assert code in codes, codes
    if SECRET.exists():
        secret_line = SECRET.read_text().splitlines()[0]
        assert secret_line not in proc.stdout + proc.stderr  # nothing from outside the input
