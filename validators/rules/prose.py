"""The rules MedCom's IGs state only in prose (spec/medcom-standards.md §17, "prose"), one function each.

Which rules apply to which standard, and at what severity, is data: profiles/rules/prose-rules.json.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from kroniker.validators import xhtml
from kroniker.validators.engine import Entry, Walk
from kroniker.validators.findings import Finding, Severity, finding
from kroniker.validators.identifiers import CPR_SYSTEM, parse_instant

VALUE_ATTACHMENT = "http://medcomfhir.dk/ig/core/StructureDefinition/medcom-observation-value-attachment-extension"


@cache
def prose_config() -> dict[str, Any]:
    text = resources.files("kroniker.profiles").joinpath("rules/prose-rules.json").read_text(encoding="utf-8")
    return json.loads(text)["standards"]


@dataclass
class DocView:
    """What the prose rules need to know about a document."""

    walk: Walk
    bundle: dict[str, Any]
    entries: list[Entry]
    standard: str  # the root package name
    composition_profile: str | None  # the standard's Composition profile URL
    params: dict[str, Any]
    max_note_bytes: int = 2 * 1024 * 1024

    @property
    def composition(self) -> Entry | None:
        return next((e for e in self.entries if e.index is not None and
                     e.resource.get("resourceType") == "Composition"), None)

    def resolve(self, ref: Any, source: Entry) -> Entry | None:
        if isinstance(ref, dict):
            ref = ref.get("reference")
        return self.walk.resolve(ref, source) if isinstance(ref, str) else None

    def of_type(self, rtype: str) -> list[Entry]:
        return [e for e in self.entries if e.index is not None and e.resource.get("resourceType") == rtype]


Rule = Callable[[DocView, Severity], Iterator[Finding]]
RULES: dict[str, Rule] = {}


def rule(rule_id: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[rule_id] = fn
        return fn

    return register


def _items(v: Any) -> list[Any]:
    """A JSON array as a list; anything else (absent, or the wrong JSON type) as no items."""
    return v if isinstance(v, list) else []


# -- narrative ------------------------------------------------------------------------------------------

@rule("DOC-RESOURCE-ID")
def resource_id(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for e in doc.entries:
        if e.index is not None and not e.resource.get("id"):
            yield finding(sev, "DOC-RESOURCE-ID", f"{e.loc}.id", (*e.path, "id"), rtype=e.resource.get("resourceType"))


@rule("DOC-NARRATIVE")
def narrative(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for e in doc.entries:
        if e.index is None:
            continue
        text = e.resource.get("text")
        if not isinstance(text, dict) or not text.get("div"):
            yield finding(sev, "DOC-NARRATIVE", f"{e.loc}.text", (*e.path, "text"),
                          rtype=e.resource.get("resourceType"))


@rule("DOC-NARRATIVE-STATUS")
def narrative_status(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for e in doc.entries:
        text = e.resource.get("text") if e.index is not None else None
        if isinstance(text, dict) and text.get("status") not in ("generated", "extensions"):
            yield finding(sev, "DOC-NARRATIVE-STATUS", f"{e.loc}.text.status", (*e.path, "text", "status"),
                          found=text.get("status"))


@rule("NARRATIVE-NO-BASE64")
def narrative_no_base64(doc: DocView, sev: Severity) -> Iterator[Finding]:
    notes = [a for e in doc.of_type("Observation") for a, _ in _attachments(e) if isinstance(a.get("data"), str)]
    probes = [a["data"][:48] for a in notes if len(a["data"]) >= 16]
    for e in doc.entries:
        text = e.resource.get("text") if e.index is not None else None
        div = text.get("div") if isinstance(text, dict) else None
        if isinstance(div, str) and any(p in div for p in probes):
            yield finding(sev, "NARRATIVE-NO-BASE64", f"{e.loc}.text.div", (*e.path, "text", "div"))


# -- Composition -----------------------------------------------------------------------------------------

@rule("COMP-META-PROFILE-URL")
def meta_profile_url(doc: DocView, sev: Severity) -> Iterator[Finding]:
    comp = doc.composition
    if comp is None or not doc.composition_profile:
        return
    meta = comp.resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list) or not profiles:
        return
    urls = [p.split("|", 1)[0] for p in profiles if isinstance(p, str)]
    if doc.composition_profile not in urls:
        yield finding(sev, "COMP-META-PROFILE-URL", f"{comp.loc}.meta.profile", (*comp.path, "meta", "profile"),
                      expected=doc.composition_profile, found=profiles)


def patient_cpr(doc: DocView) -> tuple[Entry | None, str | None]:
    comp = doc.composition
    if comp is None:
        return None, None
    patient = doc.resolve(comp.resource.get("subject"), comp)
    if patient is None:
        return None, None
    idents = patient.resource.get("identifier")
    for ident in idents if isinstance(idents, list) else []:
        if isinstance(ident, dict) and ident.get("system") == CPR_SYSTEM and isinstance(ident.get("value"), str):
            return patient, ident["value"]
    return patient, None


@rule("COMP-TITLE")
def title(doc: DocView, sev: Severity) -> Iterator[Finding]:
    comp = doc.composition
    _patient, cpr = patient_cpr(doc)
    if comp is None or cpr is None:
        return
    expected = f"{doc.params['title_prefix']} {cpr}"
    found = comp.resource.get("title")
    if isinstance(found, str) and found != expected:  # a missing title is card-min already
        yield finding(sev, "COMP-TITLE", f"{comp.loc}.title", (*comp.path, "title"), expected=expected, found=found)


def _event_start(comp: Entry) -> tuple[Any, tuple[Any, ...], str]:
    events = comp.resource.get("event")
    if isinstance(events, list) and events and isinstance(events[0], dict):
        period = events[0].get("period")
        if isinstance(period, dict):
            return period.get("start"), (*comp.path, "event", 0, "period", "start"), \
                f"{comp.loc}.event[0].period.start"
    return None, (), ""


@rule("NOTES-COMP-DATE-ORDER")
def date_order(doc: DocView, sev: Severity) -> Iterator[Finding]:
    comp = doc.composition
    if comp is None:
        return
    start, _, start_loc = _event_start(comp)
    date = comp.resource.get("date")
    a, b = parse_instant(date), parse_instant(start)
    if a is not None and b is not None and a < b:
        yield finding(sev, "NOTES-COMP-DATE-ORDER", f"{comp.loc}.date", (*comp.path, "date"), found=date,
                      expected=start, other=start_loc)


# -- the note (Observation) -------------------------------------------------------------------------------

def _attachments(obs: Entry) -> Iterator[tuple[dict[str, Any], tuple[tuple[Any, ...], str]]]:
    for i, ext in enumerate(_items(obs.resource.get("extension"))):
        if isinstance(ext, dict) and ext.get("url") == VALUE_ATTACHMENT \
                and isinstance(ext.get("valueAttachment"), dict):
            yield ext["valueAttachment"], ((*obs.path, "extension", i, "valueAttachment"),
                                           f"{obs.loc}.extension[{i}].valueAttachment")


@rule("NOTES-OBS-EFFECTIVE-EQ-EVENT")
def effective_eq_event(doc: DocView, sev: Severity) -> Iterator[Finding]:
    comp = doc.composition
    if comp is None:
        return
    start, _, start_loc = _event_start(comp)
    for obs in doc.of_type("Observation"):
        eff = obs.resource.get("effectiveDateTime")
        a, b = parse_instant(eff), parse_instant(start)
        if a is not None and b is not None and a != b:
            yield finding(sev, "NOTES-OBS-EFFECTIVE-EQ-EVENT", f"{obs.loc}.effectiveDateTime",
                          (*obs.path, "effectiveDateTime"), found=eff, expected=start, other=start_loc)


@dataclass
class DecodedNote:
    text: str | None
    problem: str | None  # why it could not be decoded


def decode_note(data: Any) -> DecodedNote:
    if not isinstance(data, str):
        return DecodedNote(None, None)
    return _decode(data)


@lru_cache(maxsize=16)
def _decode(data: str) -> DecodedNote:
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        return DecodedNote(None, f"base64: {exc}")
    try:
        return DecodedNote(raw.decode("utf-8"), None)
    except UnicodeDecodeError as exc:
        return DecodedNote(None, f"UTF-8: byte {exc.start}")


def _notes(doc: DocView) -> Iterator[tuple[DecodedNote, tuple[Any, ...], str]]:
    for obs in doc.of_type("Observation"):
        for att, (path, loc) in _attachments(obs):
            data = att.get("data")
            if isinstance(data, str) and len(data) * 3 // 4 > doc.max_note_bytes:
                continue  # too large to inspect: NOTE-SIZE says so once
            yield decode_note(data), (*path, "data"), f"{loc}.data"


@rule("NOTE-SIZE")
def note_size(doc: DocView, sev: Severity) -> Iterator[Finding]:
    """kroniker's own limit: a journal note's HTML is parsed only up to a size (hostile input stays cheap)."""
    for obs in doc.of_type("Observation"):
        for att, (path, loc) in _attachments(obs):
            data = att.get("data")
            if isinstance(data, str) and len(data) * 3 // 4 > doc.max_note_bytes:
                yield finding(sev, "too-large", f"{loc}.data", (*path, "data"), message_key="note-too-large",
                              size=len(data) * 3 // 4, limit=doc.max_note_bytes)


@rule("NOTES-OBS-ATTACHMENT-BASE64")
def attachment_base64(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for note, path, loc in _notes(doc):
        if note.problem:
            yield finding(sev, "NOTES-OBS-ATTACHMENT-BASE64", loc, path, detail=note.problem)


@rule("NOTES-OBS-NOTE-EMPTY")
def note_empty(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for note, path, loc in _notes(doc):
        if note.text is None:
            continue
        problems = xhtml.check_note(note.text)
        if not problems.text.strip() and not problems.has_image:
            yield finding(sev, "NOTES-OBS-NOTE-EMPTY", loc, path, found=note.text[:40])


@rule("NOTES-OBS-NOTE-ACTIVE")
def note_active(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for note, path, loc in _notes(doc):
        if note.text is None:
            continue
        problems = xhtml.check_note(note.text)
        if problems.active:
            yield finding(sev, "NOTES-OBS-NOTE-ACTIVE", loc, path, found=", ".join(dict.fromkeys(problems.active)))


@rule("NOTES-OBS-NOTE-MARKUP")
def note_markup(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for note, path, loc in _notes(doc):
        if note.text is None:
            continue
        problems = xhtml.check_note(note.text)
        if problems.syntax:
            yield finding(sev, "NOTES-OBS-NOTE-MARKUP", loc, path, message_key="note-not-xml", detail=problems.syntax)
        elif problems.markup:
            yield finding(sev, "NOTES-OBS-NOTE-MARKUP", loc, path, found=", ".join(dict.fromkeys(problems.markup)))


_ESCAPES = re.compile(r"\\[tnr]")


@rule("NOTES-OBS-NOTE-FORMAT")
def note_format(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for note, path, loc in _notes(doc):
        if note.text is not None:
            hits = _ESCAPES.findall(note.text)
            if hits:
                yield finding(sev, "NOTES-OBS-NOTE-FORMAT", loc, path, found=", ".join(dict.fromkeys(hits)),
                              count=len(hits))


# -- ConditionList -------------------------------------------------------------------------------------------

@rule("DOC-BUNDLE-IDENTIFIER")
def bundle_identifier_fresh(doc: DocView, sev: Severity) -> Iterator[Finding]:
    ident = doc.bundle.get("identifier")
    value = ident.get("value") if isinstance(ident, dict) else None
    bid = doc.bundle.get("id")
    if isinstance(value, str) and isinstance(bid, str) and value.removeprefix("urn:uuid:").lower() == bid.lower():
        yield finding(sev, "DOC-BUNDLE-IDENTIFIER", "Bundle.identifier.value", ("identifier", "value"),
                      message_key="bundle-identifier-reused", found=value)


@rule("CL-COND-NOTE-SHARED")
def condition_note(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for c in doc.of_type("Condition"):
        if c.resource.get("note"):
            yield finding(sev, "CL-COND-NOTE-SHARED", f"{c.loc}.note", (*c.path, "note"))


@rule("CL-COND-CLINICALSTATUS-PLI")
def clinical_status_pli(doc: DocView, sev: Severity) -> Iterator[Finding]:
    for c in doc.of_type("Condition"):
        cats = _items(c.resource.get("category"))
        pli = any(isinstance(cat, dict) and any(isinstance(cd, dict) and cd.get("code") == "problem-list-item"
                                                for cd in _items(cat.get("coding"))) for cat in cats)
        if pli and not c.resource.get("clinicalStatus"):
            yield finding(sev, "CL-COND-CLINICALSTATUS-PLI", f"{c.loc}.clinicalStatus", (*c.path, "clinicalStatus"))


def prose_rules(doc: DocView) -> Iterator[Finding]:
    cfg = prose_config().get(doc.standard)
    if not cfg:
        return
    for rule_id, severity in cfg["rules"].items():
        fn = RULES.get(rule_id)
        if fn is not None:
            yield from fn(doc, Severity[severity.upper()])
