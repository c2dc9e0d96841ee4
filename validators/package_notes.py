"""Package notes: a Shared Note that claims a care package by its event code is held to the package's profile
and to the package's fixed section ("Mål og planer").

How the profile is picked: MedCom's Composition.meta.profile allows one profile (max 1), so a package note
cannot name kroniker's profile there. The note says which package it belongs to in `Composition.event.code`,
and the engine picks the profile by that code: an installed package that depends on the note's standard (same
name and version) and has a Composition profile whose differential fixes `Composition.event.code` by a pattern
that one of the note's event codes matches. The note is then read within that package's set (MedCom's packages
and the care package's) and its Composition checked against both profiles. A note without a package's code is
not checked against any package rule.

The section's shape is the package's data: the profile's extension `note-section` carries it as an attached JSON
(heading, fields with their labels, triage colours, the diagnosis value set), so a new package or a changed
heading needs no code. The rules are named findings (LBP-NOTE-… in spec/findings.md's style: the package's
short name, the thing, what is wrong).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kroniker.validators.findings import Finding, Severity, finding
from kroniker.validators.packages import InstalledPackage, PackageCache, PackageSet

SECTION_EXT = "https://kroniker.example/fhir/StructureDefinition/note-section"
VALUE_ATTACHMENT = "http://medcomfhir.dk/ig/core/StructureDefinition/medcom-observation-value-attachment-extension"


@dataclass(frozen=True)
class PackageProfile:
    """A care package's note profile: where it is, the event codes that claim it, its section definition."""

    package: InstalledPackage
    url: str
    codes: tuple[tuple[str, str], ...]  # (system, code) of the event.code pattern
    section: dict[str, Any] | None


def package_profiles(cache: PackageCache, standard: InstalledPackage) -> list[PackageProfile]:
    """The note profiles of installed packages built on `standard` (that name at that version)."""
    out = []
    for pkg in cache.installed():
        if pkg.dependencies.get(standard.name) != standard.version:
            continue
        pset = cache.package_set(pkg)
        for sd in pset.structure_definitions(pkg):
            if sd.get("type") != "Composition" or sd.get("derivation") != "constraint":
                continue
            codes = _event_codes(sd)
            if codes:
                out.append(PackageProfile(pkg, str(sd.get("url")), codes, _section(sd, pset)))
    return out


def _event_codes(sd: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    for e in (sd.get("differential") or {}).get("element") or []:
        if isinstance(e, dict) and e.get("path") == "Composition.event.code" and \
                isinstance(e.get("patternCodeableConcept"), dict):
            return tuple((str(c.get("system")), str(c.get("code")))
                         for c in e["patternCodeableConcept"].get("coding") or [] if isinstance(c, dict))
    return ()


def _section(sd: dict[str, Any], pset: PackageSet) -> dict[str, Any] | None:
    for ext in sd.get("extension") or []:
        att = ext.get("valueAttachment") if isinstance(ext, dict) and ext.get("url") == SECTION_EXT else None
        if isinstance(att, dict) and isinstance(att.get("data"), str):
            try:
                section = json.loads(base64.b64decode(att["data"]))
            except (ValueError, binascii.Error):
                return None
            if isinstance(section, dict):
                vs = pset.resolve(section["diagnosis"]) if isinstance(section.get("diagnosis"), str) else None
                return {**section, "diagnosis_codes": _value_set_codes(vs)}
    return None


def _value_set_codes(vs: dict[str, Any] | None) -> list[tuple[str, str]]:
    codes = []
    for inc in ((vs or {}).get("compose") or {}).get("include") or []:
        for c in inc.get("concept") or []:
            codes.append((str(inc.get("system")), str(c.get("code"))))
    return codes


def event_codings(comp: dict[str, Any]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(event index, code index, coding) of a Composition's event codes."""
    events = comp.get("event")
    for i, ev in enumerate(events if isinstance(events, list) else []):
        codes = ev.get("code") if isinstance(ev, dict) else None
        for j, cc in enumerate(codes if isinstance(codes, list) else []):
            codings = cc.get("coding") if isinstance(cc, dict) else None
            for c in codings if isinstance(codings, list) else []:
                if isinstance(c, dict):
                    yield i, j, c


def claimed(comp: dict[str, Any], profiles: list[PackageProfile]) -> PackageProfile | None:
    """The package profile the Composition's event codes claim (None: not a package note)."""
    have = {(c.get("system"), c.get("code")) for _, _, c in event_codings(comp)}
    return next((p for p in profiles if any(code in have for code in p.codes)), None)


# -- the section rules ---------------------------------------------------------------------------------------

def section_rules(bundle: dict[str, Any], comp_index: int, profile: PackageProfile,
                  max_note_bytes: int) -> Iterator[Finding]:
    """The package's rules on a note that claims it: the diagnosis among the event codes, and the fixed section
    in the note's XHTML with every field there and readable."""
    from kroniker.validators.note_section import read_section  # lxml only for a package note

    section = profile.section
    if section is None:
        return
    entries = bundle["entry"]
    comp = entries[comp_index]["resource"]
    comp_loc = f"Bundle.entry[{comp_index}].resource"
    wanted = set(section.get("diagnosis_codes") or [])
    if wanted and not any((c.get("system"), c.get("code")) in wanted for _, _, c in event_codings(comp)):
        yield finding(Severity.ERROR, "PACKAGE-NOTE-DIAGNOSIS", f"{comp_loc}.event[0].code",
                      ("entry", comp_index, "resource", "event", 0, "code"),
                      expected=", ".join(sorted(code for _, code in wanted)), package=profile.package.name)
    for loc, path, html in _notes(entries, max_note_bytes):
        for code, key, params in read_section(html, section).problems:
            yield finding(Severity.ERROR, code, loc, path, params, message_key=key, heading=section.get("heading", ""),
                          package=profile.package.name)


def _notes(entries: list[Any], max_bytes: int) -> Iterator[tuple[str, tuple[Any, ...], str]]:
    """Each note's decoded XHTML (an Observation's value attachment) with where it is; a note over the size
    limit is not read (NOTE-SIZE says so)."""
    for i, e in enumerate(entries):
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "Observation":
            continue
        exts = res.get("extension")
        for k, ext in enumerate(exts if isinstance(exts, list) else []):
            att = ext.get("valueAttachment") if isinstance(ext, dict) and ext.get("url") == VALUE_ATTACHMENT else None
            limit = max_bytes // 3 * 4 + 4  # base64 of max_bytes
            if isinstance(att, dict) and isinstance(att.get("data"), str) and len(att["data"]) <= limit:
                try:
                    text = base64.b64decode(att["data"], validate=True).decode("utf-8")
                except (ValueError, binascii.Error):
                    continue  # the notes' own rules say the attachment cannot be read
                yield f"Bundle.entry[{i}].resource.extension[{k}].valueAttachment.data", \
                    ("entry", i, "resource", "extension", k, "valueAttachment", "data"), text

