"""MedCom's published examples, read where they are (../shared), with what their README says of each.

The examples are MedCom's (CC0): the IG packages' `package/example/Bundle-*.json`, read straight out of the
`.tgz` files, and ../shared/medcom-examples/ with its README (which rules each file is known to break).
Nothing here is copied into the repository.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RULE = re.compile(r"\b([A-Z][A-Z0-9]+(?:-[A-Z0-9]+)+)\s*\((error|warning|governance)\)")
_RULE_COMPACT = re.compile(r"`([A-Z][A-Z0-9]+(?:-[A-Z0-9]+)+)\((error|warning)\)`")


@dataclass
class Expectation:
    """What the README says a file breaks: rule ids by severity ("governance" counts as a warning)."""

    errors: set[str] = field(default_factory=set)
    warnings: set[str] = field(default_factory=set)
    note: str = ""


def readme_expectations(examples: Path) -> dict[str, Expectation]:
    """file (relative to medcom-examples/) → the deviations its README lists."""
    out: dict[str, Expectation] = {}
    for line in (examples / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `") or ".json`" not in line.split("|")[1]:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        exp = Expectation(note=cells[-1])
        if name.startswith("invalid-published/"):
            # | file | source | intended | findings (rule ids) | expected severity |
            for rule, sev in _RULE_COMPACT.findall(cells[3]):
                (exp.errors if sev == "error" else exp.warnings).add(rule)
            if "NOTES-OBS-NOTE-FORMAT" in cells[-1]:
                exp.warnings.add("NOTES-OBS-NOTE-FORMAT")
        else:
            for rule, sev in _RULE.findall(cells[-1]):
                (exp.errors if sev == "error" else exp.warnings).add(rule)
        out[name] = exp
    return out


def shared_document_files(examples: Path) -> list[Path]:
    """Every document Bundle among ../shared/medcom-examples (the DocumentReference is not one)."""
    files = []
    for p in sorted(examples.rglob("*.json")):
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("resourceType") == "Bundle" and data.get("type") == "document":
            files.append(p)
    return files


@dataclass
class PackageExample:
    package: str  # name#version
    member: str  # path inside the .tgz
    data: bytes

    @property
    def bundle_id(self) -> str:
        return json.loads(self.data).get("id", "")


def package_document_examples(package_dir: Path) -> list[PackageExample]:
    """Every `package/example/Bundle-*.json` that is a document Bundle, read from the package archives."""
    out = []
    for tgz in sorted(package_dir.glob("*.tgz")):
        with tarfile.open(tgz, "r:gz") as tf:
            manifest = json.loads(tf.extractfile("package/package.json").read())  # type: ignore[union-attr]
            for m in tf.getmembers():
                if re.fullmatch(r"package/example/Bundle-[^/]+\.json", m.name):
                    raw = tf.extractfile(m).read()  # type: ignore[union-attr]
                    doc: Any = json.loads(raw)
                    if doc.get("type") == "document":
                        out.append(PackageExample(f"{manifest['name']}#{manifest['version']}", m.name, raw))
    return out


def package_validation_outcomes(package_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(package, example file stem) → the HL7 validator's OperationOutcome from `package/other/validation-oo.json`."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for tgz in sorted(package_dir.glob("*.tgz")):
        with tarfile.open(tgz, "r:gz") as tf:
            manifest = json.loads(tf.extractfile("package/package.json").read())  # type: ignore[union-attr]
            try:
                member = tf.extractfile("package/other/validation-oo.json")
            except KeyError:
                continue
            bundle = json.loads(member.read())  # type: ignore[union-attr]
            for e in bundle.get("entry", []):
                res = e.get("resource", {})
                if res.get("resourceType") == "OperationOutcome":
                    out[(f"{manifest['name']}#{manifest['version']}", res.get("id", ""))] = res
    return out
