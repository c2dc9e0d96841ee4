"""Helpers for the DPIA register's tests: the shipped template, id-based JSON pointers, a clinic's adoption."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

from kroniker.dpia import model

TODAY = date(2026, 12, 1)  # a day the shipped template is meant to pass on: before go-live, reviews not yet due
SOR = "123456789012"
CLINIC_NAME = "Lægerne i Kronikergården"


def template() -> dict[str, Any]:
    return model.template("lbp")


def resolve(document: Any, selector: str) -> tuple[str | int, ...]:
    """'/activities[lps-documentation]/record/purposes' → ('activities', 0, 'record', 'purposes'): list items named
    by id, so a test says which item it means whatever the template's order."""
    path: list[str | int] = []
    node = document
    for part in selector.strip("/").split("/"):
        m = re.fullmatch(r"(.+)\[(.+)\]", part)
        key = m.group(1) if m else part
        if isinstance(node, list):
            index = int(key)
            path.append(index)
            node = node[index]
        else:
            path.append(key)
            node = node[key]
        if m:
            index = next(i for i, item in enumerate(node) if item.get("id") == m.group(2))
            path.append(index)
            node = node[index]
    return tuple(path)


def get(document: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        document = document[p]
    return document


def without(document: dict[str, Any], selector: str) -> tuple[dict[str, Any], tuple[str | int, ...]]:
    """A copy with the element at selector removed, and its path."""
    doc = copy.deepcopy(document)
    path = resolve(doc, selector)
    parent = get(doc, path[:-1])
    del parent[path[-1]]
    return doc, path


def clinic_changes(name: str = CLINIC_NAME, sor: str = SOR, signed: str | None = "2026-11-01") -> dict[str, Any]:
    """A clinic's deltas as a GP would give them on adoption: its identity, its GP-system vendor, the date it signed
    the template's standard agreements."""
    changes: dict[str, Any] = {
        "title": f"Konsekvensanalyse – {name}",
        "organisations": {
            "clinic": {"name": name, "placeholder": None, "identifiers": {"sor": sor},
                       "contact": {"email": f"klinik{sor}@laeger.example"}},
            "lps-vendor": {"name": "Lægesystemer A/S", "placeholder": None, "contact": {"email": "dpo@lps.example"}},
        },
    }
    if signed:
        changes["agreements"] = {a: {"status": "signed", "signed": signed}
                                 for a in ("dpa-lps", "dpa-hub", "dpa-plo", "dpa-webpatient")}
    return changes


def codes(findings: Any) -> set[str]:
    return {f.code for f in findings}
