"""Steps for the documents suite: the @dokument scenarios of features/leverandoer, run once for each document a
vendor's system produced, with that document in place of the one our builders make. The validator's findings
decide each requirement the scenario names (a requirement's `rules`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kroniker.conformance.requirements import ANY_ERROR, Catalogue
from kroniker.conformance.steps import Context, Registry

steps = Registry()

KIND_WORDS = {"notatet": "notes", "diagnosekortet": "conditionlist"}
ENVIRONMENT_CODES = frozenset({"package-missing"})  # about the installed packages, not the document


@dataclass(frozen=True)
class VendorDocument:
    path: Path
    name: str  # relative to the folder
    sha256: str
    kind: str | None  # notes | conditionlist | None (neither)


def kind_of(data: bytes) -> str | None:
    """Which standard a document claims (its Composition's profile), for JSON and XML alike."""
    text = data.decode("utf-8", errors="replace")
    if "medcom-notes-composition" in text:
        return "notes"
    if "medcom-conditionlist-composition" in text:
        return "conditionlist"
    return None


@dataclass
class DocumentWorld:
    ctx: Context
    catalogue: Catalogue
    requirements: tuple[str, ...]
    validate: Any  # bytes → list of finding dicts (only called live)
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


@steps.given(r"at (?P<name>\w+ \w+) med CPR-nummer (?P<cpr>\d+) er patient hos (?P<clinic>.+)")
def patient_at_clinic(world: DocumentWorld, name: str, cpr: str, clinic: str) -> None:
    """The vendor's document names its own test person; the feature's person stands for them."""


@steps.given("at lægen har skrevet et notat fra årskontrollen for hendes lænderygsmerter",
             "at lægen har registreret lændesmerter som forløbsdiagnose på hendes diagnosekort")
def vendors_document(world: DocumentWorld) -> None:
    assert world.document.kind is not None, "the document is neither a Shared Note nor a diagnosis card"


@steps.when(r"eksporten af (?P<kind>notatet|diagnosekortet) valideres")
def validated(world: DocumentWorld, kind: str) -> None:
    assert world.document.kind == KIND_WORDS[kind]
    world.findings = world.ctx.observe("findings", lambda: world.validate(world.document.path.read_bytes()))


@steps.then(r"godkendes (?P<kind>notatet|diagnosekortet) uden fejl")
def accepted_without_errors(world: DocumentWorld, kind: str) -> None:
    assert world.findings is not None
    named = {code for rid in world.requirements for code in world.catalogue.by_id[rid].rules if code != ANY_ERROR}
    for rid in world.requirements:
        rules = world.catalogue.by_id[rid].rules
        if ANY_ERROR in rules:
            hits = [f for f in world.findings if f["severity"] in ("error", "fatal") and not set(f["codes"]) & named]
        else:
            hits = [f for f in world.findings if set(f["codes"]) & set(rules)
                    and f["severity"] in ("error", "fatal", "warning")]
        world.ctx.evidence.verdicts[rid] = {
            "status": "failed" if hits else "passed",
            "findings": [f"{'/'.join(f['codes'])} {f['location']}: {f['da']}" for f in hits]}
    errors = [f for f in world.findings if f["severity"] in ("error", "fatal")]
    assert not errors, "errors: " + "; ".join(f"{'/'.join(f['codes'])} {f['location']}" for f in errors)


@steps.then("uden advarsler", "ingen advarsler handler om selve diagnosekortet")
def warnings_noted(world: DocumentWorld) -> None:
    """A warning is no requirement of its own (MedCom approves with F4): it is shown as a note, and fails only the
    requirements that name its rule (e.g. CL-COND-NOTE-SHARED)."""
    assert world.findings is not None
    world.notes += [f"{'/'.join(f['codes'])} {f['location']}: {f['da']}" for f in world.findings
                    if f["severity"] == "warning" and not set(f["codes"]) & ENVIRONMENT_CODES]
