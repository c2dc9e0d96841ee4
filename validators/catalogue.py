"""Second codes: tie findings read from StructureDefinitions to the §17 rule ids (data in profiles/rules)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from kroniker.validators.findings import Finding, Severity


@dataclass(frozen=True)
class _Row:
    rule: str
    elements: tuple[str, ...]
    keys: tuple[str, ...]
    at: tuple[str, ...]
    codes: tuple[str, ...]
    profiles: tuple[str, ...]

    def matches(self, f: Finding, element_id: str, rel_path: str, profile: str) -> bool:
        """A row names invariant keys (optionally only `at` some elements) or elements, not both."""
        if self.codes and f.code not in self.codes:
            return False
        if self.profiles and not any(p in profile for p in self.profiles):
            return False
        if self.keys:
            key = f.code.removeprefix("invariant:") if f.code.startswith("invariant:") else None
            return key in self.keys and (not self.at or _at(self.at, element_id, rel_path))
        return _at(self.elements, element_id, rel_path)


def _at(patterns: tuple[str, ...], element_id: str, rel_path: str) -> bool:
    return any(_pattern(p, element_id) or _pattern(p, rel_path) for p in patterns)


def _pattern(p: str, target: str) -> bool:
    if not target:
        return False
    if p.endswith(".*"):
        stem = p[:-2]
        return target == stem or target.startswith(stem + ".") or target.startswith(stem + ":")
    return target == p


@cache
def _rows() -> tuple[_Row, ...]:
    text = resources.files("kroniker.profiles").joinpath("rules/second-codes.json").read_text(encoding="utf-8")
    return tuple(_Row(r["rule"], tuple(r.get("elements", ())), tuple(r.get("keys", ())), tuple(r.get("at", ())),
                      tuple(r.get("codes", ())), tuple(r.get("profiles", ())))
                 for r in json.loads(text)["second_codes"])


def relative_path(bundle: dict[str, Any], path: tuple[Any, ...]) -> str:
    """`Composition.author` for ('entry', 0, 'resource', 'author', 1): the element path inside its resource."""
    if len(path) >= 3 and path[0] == "entry" and path[2] == "resource":
        try:
            rtype = bundle["entry"][path[1]]["resource"]["resourceType"]
        except (KeyError, IndexError, TypeError):
            rtype = "Resource"
        rest = path[3:]
    else:
        rtype, rest = bundle.get("resourceType", "Bundle"), path
    if not isinstance(rtype, str) or not rtype:
        rtype = "Resource"
    parts = [rtype]
    for p in rest:
        if isinstance(p, str):
            parts.append(p.lstrip("_"))
    return ".".join(parts)


# Codes of findings read from StructureDefinitions (spec/findings.md §1), the ones that get a second code.
SD_CODES = frozenset({"card-min", "card-max", "fixed-value", "pattern-value", "type", "target-profile", "binding",
                      "binding-extensible", "slice-unmatched", "slice-card-min", "slice-card-max",
                      "extension-unknown", "datatype", "unknown-element"})


def with_second_code(f: Finding, bundle: dict[str, Any]) -> Finding:
    if f.second or f.severity < Severity.WARNING or not (f.code in SD_CODES or f.code.startswith("invariant:")):
        return f
    element_id = f.profile_element.split("#", 1)[1] if f.profile_element and "#" in f.profile_element else ""
    profile = f.profile_element.split("#", 1)[0] if f.profile_element else ""
    rel = relative_path(bundle, f.path)
    for row in _rows():
        if row.matches(f, element_id, rel, profile):
            return replace(f, second=row.rule)
    return f
