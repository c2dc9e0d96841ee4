"""Value sets and code systems: what the packages, kroniker's own base value sets and the base code
lists can tell offline, and an honest "cannot check" for the rest."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from kroniker.validators import codes

# Code systems defined by a grammar rather than a list: checked by their syntax.
SYNTAX_SYSTEMS: dict[str, re.Pattern[str]] = {
    "urn:ietf:bcp:13": re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
                                  r"(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(\"[^\"]*\"|[A-Za-z0-9!#$&^_.+-]+))*"),
    "urn:ietf:bcp:47": re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*"),
}


class Membership(enum.Enum):
    IN = "in"
    NOT_IN = "not-in"
    UNKNOWN = "unknown"  # the value set or a code system it draws on is not available offline


@dataclass
class Expansion:
    url: str
    codes: set[tuple[str, str]] = field(default_factory=set)  # (system, code)
    open_systems: set[str] = field(default_factory=set)  # systems included whole but not enumerable here
    unknown: bool = False  # the value set itself (or part of it) could not be read
    codes_only: bool = False  # from a base code list: codes without a system
    syntax: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def check(self, system: str | None, code: str) -> Membership:
        if not isinstance(system, str):
            system = None
        if system in self.syntax:
            return Membership.IN if self.syntax[system].fullmatch(code) else Membership.NOT_IN
        if self.codes_only:
            return Membership.IN if any(c == code for _, c in self.codes) else (
                Membership.UNKNOWN if self.unknown else Membership.NOT_IN)
        if system is not None and (system, code) in self.codes:
            return Membership.IN
        if system is None and any(c == code for _, c in self.codes):
            # A coding without a system cannot be a member (the HL7 validator agrees); a bare code can.
            return Membership.NOT_IN
        if system in self.open_systems:
            # A whole code system that cannot be listed here; a code its own rules say cannot exist in it
            # (codes.py: SNOMED CT, SKS-D, ICPC-2) is not in the value set all the same.
            return Membership.NOT_IN if codes.impossible(system, code) else Membership.UNKNOWN
        if self.unknown:
            return Membership.UNKNOWN
        return Membership.NOT_IN

    def check_code(self, code: str) -> Membership:
        if any(c == code for _, c in self.codes) or any(r.fullmatch(code) for r in self.syntax.values()):
            return Membership.IN
        if self.open_systems or self.unknown:
            return Membership.UNKNOWN
        return Membership.NOT_IN

    @property
    def systems(self) -> set[str]:
        return {s for s, _ in self.codes} | self.open_systems


@cache
def kroniker_value_sets() -> dict[str, dict[str, Any]]:
    """kroniker's own small base value sets (profiles/valuesets), written from the FHIR specification."""
    out: dict[str, dict[str, Any]] = {}
    folder = resources.files("kroniker.profiles").joinpath("valuesets")
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            res = json.loads(item.read_text(encoding="utf-8"))
            out[res["url"]] = res
    return out


class Terminology:
    """Expands value sets within one package set, caching every expansion."""

    def __init__(self, resolve: Callable[[str], dict[str, Any] | None]) -> None:
        self._resolve = resolve
        self._cache: dict[str, Expansion] = {}
        self.dirty = False

    def preload(self, expansions: dict[str, Expansion]) -> None:
        self._cache.update(expansions)

    def expansions(self) -> dict[str, Expansion]:
        return dict(self._cache)  # a snapshot (atomic): other threads may be expanding meanwhile

    def expand(self, canonical: str, base_enum: tuple[str, ...] | None = None) -> Expansion:
        url = canonical.split("|", 1)[0]
        key = url if base_enum is None else f"{url}#{','.join(base_enum)}"
        hit = self._cache.get(key)
        if hit is None:
            hit = self._expand(url, base_enum, set())
            self._cache[key] = hit
            self.dirty = True
        return hit

    def _lookup_vs(self, url: str) -> dict[str, Any] | None:
        res = self._resolve(url)
        if res is not None and res.get("resourceType") == "ValueSet":
            return res
        return kroniker_value_sets().get(url)

    def _lookup_cs(self, url: str) -> dict[str, Any] | None:
        res = self._resolve(url)
        if res is not None and res.get("resourceType") == "CodeSystem":
            return res
        for vs in kroniker_value_sets().values():
            for cs in vs.get("contained", []):
                if cs.get("url") == url:
                    return cs
        return None

    def _expand(self, url: str, base_enum: tuple[str, ...] | None, visiting: set[str]) -> Expansion:
        exp = Expansion(url)
        vs = self._lookup_vs(url)
        if vs is None:
            if base_enum:
                exp.codes = {("", c) for c in base_enum if c != "+"}
                exp.codes_only = True
                exp.unknown = "+" in base_enum  # fhir.resources marks an incomplete list with "+"
            else:
                exp.unknown = True
            return exp
        if url in visiting:
            return exp
        visiting = visiting | {url}
        if vs.get("expansion", {}).get("contains"):
            self._add_contains(exp, vs["expansion"]["contains"])
            return exp
        compose = vs.get("compose") or {}
        for inc in compose.get("include", []):
            self._include(exp, inc, visiting)
        for exc in compose.get("exclude", []):
            sub = Expansion(url)
            self._include(sub, exc, visiting)
            exp.codes -= sub.codes
        return exp

    def _add_contains(self, exp: Expansion, contains: list[dict[str, Any]]) -> None:
        for c in contains:
            if c.get("code") and c.get("system"):
                exp.codes.add((c["system"], c["code"]))
            self._add_contains(exp, c.get("contains", []))

    def _include(self, exp: Expansion, inc: dict[str, Any], visiting: set[str]) -> None:
        system = inc.get("system")
        for vs_url in inc.get("valueSet", []):
            sub = self._expand(vs_url.split("|", 1)[0], None, visiting)
            exp.codes |= sub.codes
            exp.open_systems |= sub.open_systems
            exp.syntax.update(sub.syntax)
            exp.unknown |= sub.unknown
        if not system:
            return
        if system in SYNTAX_SYSTEMS and not inc.get("concept"):
            exp.syntax[system] = SYNTAX_SYSTEMS[system]
            return
        if inc.get("concept"):
            exp.codes.update((system, c["code"]) for c in inc["concept"] if c.get("code"))
            return
        cs = self._lookup_cs(system)
        if inc.get("filter") or cs is None or cs.get("content") not in ("complete", None):
            exp.open_systems.add(system)
            if cs is not None:  # what we know of a fragment still counts
                exp.codes.update((system, code) for code in _all_codes(cs.get("concept", [])))
            return
        exp.codes.update((system, code) for code in _all_codes(cs.get("concept", [])))


def _all_codes(concepts: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    stack = list(concepts)
    while stack:
        c = stack.pop()
        if c.get("code"):
            out.append(c["code"])
        stack.extend(c.get("concept", []))
    return out
