"""Steps for the documents suite: the @dokument scenarios of features/leverandoer, run once for each document a
vendor's system produced, with that document in place of the one our builders make. The validator's findings
decide each requirement the scenario names (a requirement's `rules`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kroniker.conformance.requirements import ANY_ERROR, Catalogue
from kroniker.conformance.steps import Context, Registry, Unsupported, check

steps = Registry()

# The kinds of document a scenario's words stand for: a package note is a Shared Note too.
KIND_WORDS = {"notatet": ("notes", "packagenote"), "diagnosekortet": ("conditionlist",),
              "pakkenotatet": ("packagenote",)}
# The feature files (by name) whose @dokument scenarios run with each kind of document.
FEATURES_OF_KIND = {"notes": ("journalnotat",), "conditionlist": ("diagnosekort",),
                    "packagenote": ("journalnotat", "pakkenotat")}
ENVIRONMENT_CODES = frozenset({"package-missing"})  # about the installed packages, not the document


@dataclass(frozen=True)
class VendorDocument:
    path: Path
    name: str  # relative to the folder
    sha256: str
    kind: str | None  # notes | packagenote | conditionlist | None (neither)


def kind_of(data: bytes) -> str | None:
    """Which standard a document claims (its Composition's profile), for JSON and XML alike; a Shared Note whose
    Composition.event carries the low back pain package's code is a package note."""
    text = data.decode("utf-8", errors="replace")
    if "medcom-notes-composition" in text:
        return "packagenote" if claims_package(text) else "notes"
    if "medcom-conditionlist-composition" in text:
        return "conditionlist"
    return None


def claims_package(text: str) -> bool:
    """Does the Shared Note's Composition.event carry the package's code (conformance.documents.PACKAGE_CODE)?"""
    from kroniker.conformance.documents import PACKAGE_CODE

    system, code = PACKAGE_CODE
    if system not in text:
        return False
    try:
        doc = json.loads(text)
    except ValueError:  # XML: the code's system and value, as FHIR's XML writes a Coding
        return f'<system value="{system}"/>' in text and f'<code value="{code}"/>' in text
    comp = next((e.get("resource") for e in doc.get("entry") or [] if isinstance(e, dict)
                 and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "Composition"),
                None) if isinstance(doc, dict) else None
    return isinstance(comp, dict) and any(
        isinstance(c, dict) and c.get("system") == system and c.get("code") == code
        for ev in comp.get("event") or [] if isinstance(ev, dict)
        for cc in ev.get("code") or [] if isinstance(cc, dict)
        for c in cc.get("coding") or [])


@dataclass
class DocumentWorld:
    ctx: Context
    catalogue: Catalogue
    requirements: tuple[str, ...]
    validate: Any  # bytes → list of finding dicts (only called live)
    package_profile: Any = None  # bytes → the installed note profile the note claims, or None (only called live)
    findings: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def document(self) -> VendorDocument:
        assert isinstance(self.ctx.document, VendorDocument)
        return self.ctx.document


def findings_of(report: Any) -> list[dict[str, Any]]:
    """A validator's report as the record keeps it."""
    return [{"severity": f.severity.label.lower(), "codes": list(f.codes), "location": f.location,
             "line": f.line, "da": f.message("da"), "en": f.message("en")} for f in report.findings]


def finding_text(f: dict[str, Any], lang: str) -> str:
    """A finding for a reader: its codes, where, and what (the message without the location said twice)."""
    text = str(f[lang])
    prefix = f"{f['location']}: "
    return f"{'/'.join(f['codes'])} {f['location']}: {text[len(prefix):] if text.startswith(prefix) else text}"


@steps.given(r"at (?P<name>\w+ \w+) med CPR-nummer (?P<cpr>\d+) er patient hos (?P<clinic>.+)")
def patient_at_clinic(world: DocumentWorld, name: str, cpr: str, clinic: str) -> None:
    """The vendor's document names its own test person; the feature's person stands for them."""


@steps.given("at lægen har skrevet et notat fra årskontrollen for hendes lænderygsmerter",
             "at lægen har registreret lændesmerter som forløbsdiagnose på hendes diagnosekort")
def vendors_document(world: DocumentWorld) -> None:
    check(world.document.kind is not None, "check-neither-kind")


@steps.given("at lægen har skrevet et pakkenotat fra årskontrollen med mål, plan, næste kontrol og triagefarve")
def vendors_package_note(world: DocumentWorld) -> None:
    check(world.document.kind == "packagenote", "check-not-package-note")


@steps.when(r"eksporten af (?P<kind>notatet|diagnosekortet|pakkenotatet) valideres")
def validated(world: DocumentWorld, kind: str) -> None:
    assert world.document.kind in KIND_WORDS[kind]
    if kind == "pakkenotatet":
        # Without kroniker's package installed the note would be read as a plain Shared Note, and the package's
        # rules could not fail: the case cannot decide its requirement then.
        profile = world.ctx.observe("package-profile",
                                    lambda: world.package_profile(world.document.path.read_bytes()))
        if profile is None:
            raise Unsupported("", "err-no-package")
    world.findings = world.ctx.observe("findings", lambda: world.validate(world.document.path.read_bytes()))


@steps.then(r"godkendes (?P<kind>notatet|diagnosekortet|pakkenotatet) uden fejl")
def accepted_without_errors(world: DocumentWorld, kind: str) -> None:
    assert world.findings is not None
    # "Any other error" is any error no requirement on a document of this kind names: a package note's missing
    # section fails the package's requirement, not the Shared Note's validity.
    kinds = {world.document.kind, "notes"} if world.document.kind == "packagenote" else {world.document.kind}
    named = {code for r in world.catalogue.requirements if set(r.applies) & kinds or r.id in world.requirements
             for code in r.rules if code != ANY_ERROR}
    for rid in world.requirements:
        rules = world.catalogue.by_id[rid].rules
        if ANY_ERROR in rules:
            hits = [f for f in world.findings if f["severity"] in ("error", "fatal") and not set(f["codes"]) & named]
        else:
            hits = [f for f in world.findings if set(f["codes"]) & set(rules)
                    and f["severity"] in ("error", "fatal", "warning")]
        world.ctx.evidence.verdicts[rid] = {
            "status": "failed" if hits else "passed",
            "findings": [finding_text(f, "da") for f in hits], "findings_en": [finding_text(f, "en") for f in hits]}
    errors = [f for f in world.findings if f["severity"] in ("error", "fatal")]
    check(not errors, "check-document-errors",
          errors="; ".join(f"{'/'.join(f['codes'])} {f['location']}" for f in errors))


@steps.then("uden advarsler", "ingen advarsler handler om selve diagnosekortet")
def warnings_noted(world: DocumentWorld) -> None:
    """A warning is no requirement of its own (MedCom approves with F4): it is shown as a note, and fails only the
    requirements that name its rule (e.g. CL-COND-NOTE-SHARED)."""
    assert world.findings is not None
    world.notes += [finding_text(f, "da") for f in world.findings
                    if f["severity"] == "warning" and not set(f["codes"]) & ENVIRONMENT_CODES]
