"""The requirements a sharing system or a vendor's documents are held to, as data (requirements.json), and the
traceability from each requirement to the scenarios that test it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from kroniker.conformance.features import Scenario

GRADES = ("F1", "F2", "F3", "F4")
ANY_ERROR = "*"  # in `rules`: every error finding no other requirement of the document names


@dataclass(frozen=True)
class Requirement:
    """One machine-checkable requirement: its id, text in Danish and English, where it comes from, and how grave
    MedCom's scheme calls a failure of it (F1 critical … F4 less significant)."""

    id: str
    area: str
    grade: str
    text: dict[str, str]
    source: dict[str, str]
    rules: tuple[str, ...] = ()  # finding codes that break it (document requirements)
    applies: tuple[str, ...] = ()  # document kinds ("notes", "packagenote", "conditionlist")
    not_covered: dict[str, str] | None = None  # why no scenario tests it yet
    medcom: dict[str, str] | None = None  # MedCom's test protocol step: name (file prefix), protocol, step

    def source_text(self) -> str:
        s = self.source
        return f"{s['standard']} {s['version']}, {s['section']}"


@dataclass(frozen=True)
class Catalogue:
    version: str
    grades: dict[str, dict[str, str]]
    requirements: tuple[Requirement, ...]
    sha256: str = ""
    by_id: dict[str, Requirement] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_id.update({r.id: r for r in self.requirements})


def load() -> Catalogue:
    import hashlib

    raw = resources.files("kroniker.conformance").joinpath("requirements.json").read_bytes()
    data = json.loads(raw)
    reqs = tuple(_requirement(r) for r in data["requirements"])
    return Catalogue(str(data["version"]), data["grades"], reqs, hashlib.sha256(raw).hexdigest())


def _requirement(r: dict[str, Any]) -> Requirement:
    if r["grade"] not in GRADES:
        raise ValueError(f"requirement {r['id']}: grade {r['grade']!r} is not one of {', '.join(GRADES)}")
    return Requirement(r["id"], r["area"], r["grade"], {"da": r["da"], "en": r["en"]}, r["source"],
                       tuple(r.get("rules", ())), tuple(r.get("applies", "").split()), r.get("not_covered"),
                       r.get("medcom"))


@dataclass(frozen=True)
class Trace:
    requirement: Requirement
    scenarios: tuple[Scenario, ...]

    @property
    def covered(self) -> bool:
        return bool(self.scenarios)


def traceability(catalogue: Catalogue, scenarios: list[Scenario]) -> list[Trace]:
    """Each requirement with the scenarios tagged with it, in the catalogue's order."""
    return [Trace(r, tuple(s for s in scenarios if r.id in s.requirements)) for r in catalogue.requirements]


def unknown_tags(catalogue: Catalogue, scenarios: list[Scenario]) -> list[tuple[Scenario, str]]:
    """Scenario tags that name no requirement (a typo would otherwise leave a requirement silently untested)."""
    return [(s, t) for s in scenarios for t in s.requirements if t not in catalogue.by_id]
