"""One invalid document (at least) per rule of the catalogue in spec/medcom-standards.md §17.

Each case takes a valid document of our own making (tests/builders.py), breaks exactly one rule with a
small, named mutation, validates it, and asserts that a finding carries the §17 rule id (as primary or
second code), the expected primary code (spec/findings.md), the §17 severity and the location of the element
the rule is about. The unmutated documents are valid, so each case shows that its mutation is what triggers
the finding.

Cases marked xfail are engine bugs (the mutation clearly breaks the rule, the validator reports something
else or nothing); the reason says what is wrong. They are strict, so a fix makes them fail until the xfail
is removed.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kroniker.validators.findings import Finding, Report, Severity
from kroniker.validators.validate import Validator
from tests.builders import BASE, clone, diagnosis_card, practitioner, shared_note
from tests.conftest import shared_path

Doc = dict[str, Any]
Builder = Callable[[], Doc]
Mutation = Callable[[Doc], None]
PathPart = str | int

ERROR, WARNING = Severity.ERROR, Severity.WARNING
KIND = {shared_note: "notes", diagnosis_card: "cl"}

# Where the builders put each resource (Bundle.entry index).
N_COMPOSITION, N_OBSERVATION, N_PATIENT, N_ORGANIZATION, N_PRACTITIONER, N_ROLE = range(6)
C_COMPOSITION, C_PATIENT, C_ORGANIZATION, C_CONDITION = range(4)
C_ADDED = 4  # a Practitioner some ConditionList cases add (the diagnosis card has none)

NOTES_COMPOSITION = "http://medcomfhir.dk/ig/notes/StructureDefinition/medcom-notes-composition"
NOTES_OBSERVATION = "http://medcomfhir.dk/ig/notes/StructureDefinition/medcom-notes-observation"
CL_BUNDLE = "http://medcomfhir.dk/ig/conditionlist/StructureDefinition/medcom-conditionlist-bundle"
DOCUMENT_COMPOSITION = "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-composition"
SNOMED = "http://snomed.info/sct"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
X_ECPR = "urn:oid:1.2.208.176.1.6.1.1"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"  # a UUID no entry of the builders' documents has


# -- where things are -------------------------------------------------------------------------------------

def res(doc: Doc, index: int) -> Doc:
    return doc["entry"][index]["resource"]


def at(index: int, path: str = "") -> str:
    """The expected location of an element of entry `index`'s resource, e.g. at(0, ".title")."""
    return f"Bundle.entry[{index}].resource{path}"


def _parent(doc: Doc, index: int | None, path: tuple[PathPart, ...]) -> Any:
    node: Any = doc if index is None else res(doc, index)
    for part in path[:-1]:
        node = node[part]
    return node


# -- mutations: small factories for the common ones, named functions for the rest --------------------------

def drop(index: int | None, *path: PathPart) -> Mutation:
    """Delete an element (of the Bundle when index is None, else of entry `index`'s resource)."""
    def mutate(doc: Doc) -> None:
        del _parent(doc, index, path)[path[-1]]
    return mutate


def put(index: int | None, *path: PathPart, value: Any) -> Mutation:
    """Set an element to a value."""
    def mutate(doc: Doc) -> None:
        _parent(doc, index, path)[path[-1]] = copy.deepcopy(value)
    return mutate


def append(index: int | None, *path: PathPart, value: Any) -> Mutation:
    """Add an item to a list element."""
    def mutate(doc: Doc) -> None:
        _parent(doc, index, path)[path[-1]].append(copy.deepcopy(value))
    return mutate


def repeat(index: int, *path: PathPart) -> Mutation:
    """Add a copy of a list's first item (a second section, attachment, identifier, …)."""
    def mutate(doc: Doc) -> None:
        items = _parent(doc, index, path)[path[-1]]
        items.append(clone(items[0]))
    return mutate


def refer(index: int, *path: PathPart, to: int) -> Mutation:
    """Point a Reference at entry `to`'s resource."""
    def mutate(doc: Doc) -> None:
        target = res(doc, to)
        _parent(doc, index, path)[path[-1]] = {"reference": f"{target['resourceType']}/{target['id']}"}
    return mutate


def note_html(html: str) -> Mutation:
    """Replace the Shared Note's text (the base64 data of the value attachment) by `html`."""
    return put(N_OBSERVATION, "extension", 0, "valueAttachment", "data",
               value=base64.b64encode(html.encode("utf-8")).decode("ascii"))


def note_bytes_latin1(doc: Doc) -> None:
    # Valid base64, but the bytes are Latin-1 ("æ" is 0xE6), not the UTF-8 text a note must be.
    res(doc, N_OBSERVATION)["extension"][0]["valueAttachment"]["data"] = \
        base64.b64encode("<p>Lændesmerter</p>".encode("latin-1")).decode("ascii")


def base64_in_narrative(doc: Doc) -> None:
    # What MedCom's IG-generated examples do: the note's base64 rendered in the Observation's narrative.
    obs = res(doc, N_OBSERVATION)
    data = obs["extension"][0]["valueAttachment"]["data"]
    row = f"<tr><th>Data</th><td>{data}</td></tr>"
    obs["text"]["div"] = obs["text"]["div"].replace("</table>", f"{row}</table>")


def entry_without(index: int, key: str) -> Mutation:
    """Delete an entry's fullUrl or resource."""
    def mutate(doc: Doc) -> None:
        del doc["entry"][index][key]
    return mutate


def add_reference(index: int, *path: PathPart, to: int) -> Mutation:
    """Add a Reference to entry `to`'s resource to a list element."""
    def mutate(doc: Doc) -> None:
        target = res(doc, to)
        _parent(doc, index, path)[path[-1]].append({"reference": f"{target['resourceType']}/{target['id']}"})
    return mutate


def effective_as_period(doc: Doc) -> None:
    obs = res(doc, N_OBSERVATION)
    obs["effectivePeriod"] = {"start": obs.pop("effectiveDateTime")}


def composition_moved_last(doc: Doc) -> None:
    doc["entry"].append(doc["entry"].pop(0))


def patient_first(doc: Doc) -> None:
    doc["entry"][0], doc["entry"][1] = doc["entry"][1], doc["entry"][0]


def duplicate_entry(index: int) -> Mutation:
    """The same entry twice: two entries with one fullUrl."""
    def mutate(doc: Doc) -> None:
        doc["entry"].append(clone(doc["entry"][index]))
    return mutate


def fullurl_other_id(doc: Doc) -> None:
    entry = doc["entry"][N_PRACTITIONER]
    entry["fullUrl"] = f"{BASE}/Practitioner/{UNKNOWN_ID}"


def fullurl_other_type(doc: Doc) -> None:
    entry = doc["entry"][C_CONDITION]
    entry["fullUrl"] = f"{BASE}/Observation/{entry['resource']['id']}"


def practitioner_entry_removed(doc: Doc) -> None:
    # Composition.author[1], Observation.performer[2] and PractitionerRole.practitioner now dangle.
    del doc["entry"][N_PRACTITIONER]


def bundle_identifier_is_bundle_id(doc: Doc) -> None:
    doc["identifier"]["value"] = f"urn:uuid:{doc['id']}"


def dates_reversed(doc: Doc) -> None:
    # Last update (date) before creation (event.period.start): MedCom's consumer test tec-invalidSwappedDates.
    res(doc, N_COMPOSITION)["date"] = "2026-11-20T09:00:00+01:00"


def section_without_entry(doc: Doc) -> None:
    # Text only, so the section is still legal FHIR (cmp-1); only the Notes 1..1 entry rule is broken.
    comp = res(doc, N_COMPOSITION)
    comp["section"] = [{"text": clone(comp["text"])}]


def with_cl_practitioner(doc: Doc, *, given: bool = True) -> str:
    """Add a Practitioner (entry C_ADDED) to a diagnosis card; returns a reference to it."""
    p = practitioner(with_identifier=False)
    if not given:
        del p["name"][0]["given"]
    doc["entry"].append({"fullUrl": f"{BASE}/Practitioner/{p['id']}", "resource": p})
    return f"Practitioner/{p['id']}"


def cl_author_practitioner_only(doc: Doc) -> None:
    res(doc, C_COMPOSITION)["author"] = [{"reference": with_cl_practitioner(doc)}]


def cl_three_authors(doc: Doc) -> None:
    ref = with_cl_practitioner(doc)
    res(doc, C_COMPOSITION)["author"] += [{"reference": ref}, {"reference": ref}]


def cl_practitioner_without_given(doc: Doc) -> None:
    res(doc, C_COMPOSITION)["author"].append({"reference": with_cl_practitioner(doc, given=False)})


def cl_two_attesters(doc: Doc) -> None:
    res(doc, C_COMPOSITION)["attester"] = [{"mode": "official"}, {"mode": "legal"}]


def attester_organization(doc: Doc) -> None:
    org = res(doc, N_ORGANIZATION)
    party = {"reference": f"Organization/{org['id']}"}
    res(doc, N_COMPOSITION)["attester"] = [{"mode": "legal", "party": party}]


def third_author(doc: Doc) -> None:
    comp = res(doc, N_COMPOSITION)
    comp["author"].append(clone(comp["author"][1]))


def cl_status_category_code(code: str, display: str) -> Mutation:
    """Replace the status category's SNOMED coding."""
    return put(C_CONDITION, "category", 0, "coding", 0,
               value={"system": SNOMED, "code": code, "display": display})


def cl_second_type_category(doc: Doc) -> None:
    # A Forløbsdiagnose (problem-list-item) that is also a Kontaktdiagnose (encounter-diagnosis).
    coding = {"system": CONDITION_CATEGORY, "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}
    res(doc, C_CONDITION)["category"].append({"coding": [coding]})


def cl_abated_but_active(doc: Doc) -> None:
    res(doc, C_CONDITION)["abatementDateTime"] = "2026-11-01"  # clinicalStatus stays "active"


def replacement_cpr(index: int) -> Mutation:
    # An X-eCPR (valid by DK Core's x-ecpr invariant) instead of the CPR.
    return put(index, "identifier", value=[{"system": X_ECPR, "value": "1505621AB3"}])


def role_code_and_text(doc: Doc) -> None:
    res(doc, N_ROLE)["code"][0]["text"] = "Speciallæge i almen medicin"


def role_code_display_only(doc: Doc) -> None:
    res(doc, N_ROLE)["code"] = [{"coding": [{"display": "Praktiserende læge"}]}]


# -- the cases ----------------------------------------------------------------------------------------------

def case(rule: str, build: Builder, label: str, mutate: Mutation, code: str | None, location: str, *,
         severity: Severity = ERROR, bug: str | None = None) -> Any:
    """One row: §17 rule id, builder, mutation, expected primary code (None: any), location, severity.

    `bug` marks an engine bug: the case is a strict xfail with that reason.
    """
    marks = [pytest.mark.xfail(strict=True, reason=f"engine: {bug}")] if bug else []
    return pytest.param(rule, build, mutate, code, location, severity, marks=marks,
                        id=f"{rule}:{KIND[build]}:{label}")


N, C = shared_note, diagnosis_card
NOTE = ".extension[0].valueAttachment.data"  # where the note is, in the Observation

CASES = [
    # ---- the document Bundle (§3) ----
    case("DOC-BUNDLE-TYPE", N, "collection", put(None, "type", value="collection"),
         "pattern-value", "Bundle.type"),
    case("DOC-BUNDLE-TYPE", C, "collection", put(None, "type", value="collection"),
         "pattern-value", "Bundle.type"),
    case("DOC-BUNDLE-ID", N, "missing", drop(None, "id"),
         "card-min", "Bundle.id"),
    case("DOC-BUNDLE-ID", C, "missing", drop(None, "id"),
         "card-min", "Bundle.id"),
    case("DOC-BUNDLE-ID-UUID", N, "not-a-uuid", put(None, "id", value="arskontrol-bundle"),
         "invariant:medcom-document-bundle-id-uuid", "Bundle.id"),
    case("DOC-BUNDLE-ID-UUID", N, "uuid-v1", put(None, "id", value="c232ab00-9414-11ec-b3c8-9e6bdeced846"),
         "invariant:medcom-document-bundle-id-uuid", "Bundle.id"),
    # bdl-9 is an invariant of Bundle, so it is reported at Bundle (as bdl-7 and bdl-11 are).
    case("DOC-BUNDLE-IDENTIFIER", N, "no-system", drop(None, "identifier", "system"),
         "invariant:bdl-9", "Bundle"),
    case("DOC-BUNDLE-IDENTIFIER", C, "missing", drop(None, "identifier"),
         "card-min", "Bundle.identifier"),
    # ConditionList's send protocol: a fresh UUID, never the Bundle.id.
    case("DOC-BUNDLE-IDENTIFIER", C, "same-as-bundle-id", bundle_identifier_is_bundle_id,
         "DOC-BUNDLE-IDENTIFIER", "Bundle.identifier.value"),
    case("DOC-BUNDLE-TIMESTAMP", N, "no-offset", put(None, "timestamp", value="2026-11-21T00:05:00"),
         "invariant:medcom-datetime-has-time-offset-zulu", "Bundle.timestamp"),
    case("DOC-BUNDLE-TIMESTAMP", C, "missing", drop(None, "timestamp"),
         "card-min", "Bundle.timestamp"),
    # ConditionList has no zulu invariant; the instant datatype still wants seconds.
    case("DOC-BUNDLE-TIMESTAMP", C, "no-seconds", put(None, "timestamp", value="2026-11-21T00:05+01:00"),
         "datatype", "Bundle.timestamp"),
    case("DOC-BUNDLE-ENTRY", N, "no-entries", drop(None, "entry"),
         "card-min", "Bundle.entry"),
    case("DOC-BUNDLE-ENTRY", C, "no-entries", drop(None, "entry"),
         "card-min", "Bundle.entry"),
    case("DOC-ENTRY-RESOURCE", N, "organization-entry-empty", entry_without(N_ORGANIZATION, "resource"),
         "card-min", f"Bundle.entry[{N_ORGANIZATION}].resource"),
    case("DOC-ENTRY-RESOURCE", C, "condition-entry-empty", entry_without(C_CONDITION, "resource"),
         "card-min", f"Bundle.entry[{C_CONDITION}].resource"),
    case("DOC-ENTRY-FULLURL", N, "patient-without", entry_without(N_PATIENT, "fullUrl"),
         "card-min", f"Bundle.entry[{N_PATIENT}].fullUrl"),
    case("DOC-ENTRY-FULLURL", C, "condition-without", entry_without(C_CONDITION, "fullUrl"),
         "card-min", f"Bundle.entry[{C_CONDITION}].fullUrl"),
    case("DOC-ENTRY-FULLURL-ID", N, "other-id", fullurl_other_id,
         "DOC-ENTRY-FULLURL-ID", f"Bundle.entry[{N_PRACTITIONER}].fullUrl"),
    case("DOC-ENTRY-FULLURL-ID", C, "other-type", fullurl_other_type,
         "DOC-ENTRY-FULLURL-ID", f"Bundle.entry[{C_CONDITION}].fullUrl"),
    case("DOC-ENTRY-FULLURL-UNIQUE", N, "practitioner-twice", duplicate_entry(N_PRACTITIONER),
         "invariant:bdl-7", "Bundle"),
    case("DOC-ENTRY-FULLURL-UNIQUE", C, "condition-twice", duplicate_entry(C_CONDITION),
         "invariant:bdl-7", "Bundle"),
    case("DOC-FIRST-COMPOSITION", N, "composition-last", composition_moved_last,
         "invariant:bdl-11", "Bundle"),
    case("DOC-FIRST-COMPOSITION", C, "patient-first", patient_first,
         "invariant:bdl-11", "Bundle"),
    case("DOC-REF-RESOLVE", N, "observation-subject",
         put(N_OBSERVATION, "subject", value={"reference": f"Patient/{UNKNOWN_ID}"}),
         "ref-unresolved", at(N_OBSERVATION, ".subject.reference")),
    # section.entry has no 'bundled' aggregation: only the FHIR document rules make it resolve.
    case("DOC-REF-RESOLVE", N, "section-entry",
         put(N_COMPOSITION, "section", 0, "entry", 0, value={"reference": f"Observation/{UNKNOWN_ID}"}),
         "ref-unresolved", at(N_COMPOSITION, ".section[0].entry[0].reference")),
    case("DOC-REF-RESOLVE", N, "practitioner-not-included", practitioner_entry_removed,
         "ref-unresolved", at(N_COMPOSITION, ".author[1].reference")),
    case("DOC-REF-RESOLVE", C, "condition-subject",
         put(C_CONDITION, "subject", value={"reference": f"Patient/{UNKNOWN_ID}"}),
         "ref-unresolved", at(C_CONDITION, ".subject.reference")),
    case("DOC-RESOURCE-ID", N, "patient", drop(N_PATIENT, "id"),
         "card-min", at(N_PATIENT, ".id")),
    case("DOC-RESOURCE-ID", C, "condition", drop(C_CONDITION, "id"),
         "DOC-RESOURCE-ID", at(C_CONDITION, ".id")),

    # ---- narratives (§13) ----
    case("DOC-NARRATIVE", N, "observation", drop(N_OBSERVATION, "text"),
         "card-min", at(N_OBSERVATION, ".text")),
    case("DOC-NARRATIVE", C, "condition", drop(C_CONDITION, "text"),
         "DOC-NARRATIVE", at(C_CONDITION, ".text")),
    case("DOC-NARRATIVE-STATUS", N, "patient-empty", put(N_PATIENT, "text", "status", value="empty"),
         "DOC-NARRATIVE-STATUS", at(N_PATIENT, ".text.status")),
    case("DOC-NARRATIVE-STATUS", C, "composition-empty", put(C_COMPOSITION, "text", "status", value="empty"),
         "DOC-NARRATIVE-STATUS", at(C_COMPOSITION, ".text.status")),
    case("NARRATIVE-NO-BASE64", N, "note-in-observation-narrative", base64_in_narrative,
         "NARRATIVE-NO-BASE64", at(N_OBSERVATION, ".text.div"), severity=WARNING),

    # ---- Composition (§4) ----
    case("COMP-META-PROFILE", N, "two-profiles",
         append(N_COMPOSITION, "meta", "profile", value=f"{NOTES_COMPOSITION}|1.0.0"),
         "card-max", at(N_COMPOSITION, ".meta.profile")),
    case("COMP-META-PROFILE", C, "two-profiles",
         append(C_COMPOSITION, "meta", "profile", value=f"{DOCUMENT_COMPOSITION}|1.0.1"),
         "card-max", at(C_COMPOSITION, ".meta.profile")),
    case("COMP-META-PROFILE-SEMVER", N, "unversioned",
         put(N_COMPOSITION, "meta", "profile", value=[NOTES_COMPOSITION]),
         "invariant:medcom-canonical-semver", at(N_COMPOSITION, ".meta.profile[0]")),
    case("COMP-META-PROFILE-SEMVER", N, "major-only",
         put(N_COMPOSITION, "meta", "profile", value=[f"{NOTES_COMPOSITION}|1"]),
         "invariant:medcom-canonical-semver", at(N_COMPOSITION, ".meta.profile[0]")),
    case("COMP-META-PROFILE-MAJOR", N, "major-2",
         put(N_COMPOSITION, "meta", "profile", value=[f"{NOTES_COMPOSITION}|2.0"]),
         None, at(N_COMPOSITION, ".meta.profile[0]")),
    # A Notes canonical, but not the Composition's: the standard is still identified, the URL is wrong.
    case("COMP-META-PROFILE-URL", N, "observation-profile",
         put(N_COMPOSITION, "meta", "profile", value=[f"{NOTES_OBSERVATION}|1.0"]),
         "COMP-META-PROFILE-URL", at(N_COMPOSITION, ".meta.profile")),
    case("COMP-META-PROFILE-URL", C, "bundle-profile",
         put(C_COMPOSITION, "meta", "profile", value=[CL_BUNDLE]),
         "COMP-META-PROFILE-URL", at(C_COMPOSITION, ".meta.profile")),
    case("COMP-META-PROFILE-URL", N, "generic-document-composition",
         put(N_COMPOSITION, "meta", "profile", value=[f"{DOCUMENT_COMPOSITION}|2.0.2"]),
         "COMP-META-PROFILE-URL", at(N_COMPOSITION, ".meta.profile")),
    case("COMP-META-PROFILE-URL", C, "generic-document-composition",
         put(C_COMPOSITION, "meta", "profile", value=[f"{DOCUMENT_COMPOSITION}|1.0.1"]),
         "COMP-META-PROFILE-URL", at(C_COMPOSITION, ".meta.profile")),
    case("COMP-IDENTIFIER", N, "missing", drop(N_COMPOSITION, "identifier"),
         "card-min", at(N_COMPOSITION, ".identifier")),
    case("COMP-IDENTIFIER", N, "no-system", drop(N_COMPOSITION, "identifier", "system"),
         "card-min", at(N_COMPOSITION, ".identifier.system")),
    case("COMP-IDENTIFIER-UUID", N, "no-urn-prefix",
         put(N_COMPOSITION, "identifier", "value", value="857a20f5-fd54-4583-9c2a-1d1f0e6b5a3c"),
         "invariant:medcom-uuid", at(N_COMPOSITION, ".identifier.value")),
    case("COMP-STATUS", N, "preliminary", put(N_COMPOSITION, "status", value="preliminary"),
         "pattern-value", at(N_COMPOSITION, ".status")),
    case("COMP-STATUS", C, "preliminary", put(C_COMPOSITION, "status", value="preliminary"),
         "pattern-value", at(C_COMPOSITION, ".status")),
    case("NOTES-COMP-TYPE", N, "other-snomed-code",
         put(N_COMPOSITION, "type", "coding", 0, "code", value="371531000"),
         "fixed-value", at(N_COMPOSITION, ".type.coding[0].code")),
    case("NOTES-COMP-TYPE", N, "danish-display",
         put(N_COMPOSITION, "type", "coding", 0, "display", value="Journalnotat"),
         "fixed-value", at(N_COMPOSITION, ".type.coding[0].display")),
    case("CL-COMP-TYPE", C, "consult-note", put(C_COMPOSITION, "type", "coding", 0, "code", value="11488-4"),
         "pattern-value", at(C_COMPOSITION, ".type")),
    case("NOTES-COMP-CATEGORY", N, "missing", drop(N_COMPOSITION, "category"),
         "card-min", at(N_COMPOSITION, ".category")),
    case("NOTES-COMP-CATEGORY", N, "code-002",
         put(N_COMPOSITION, "category", 0, "coding", 0, "code", value="002"),
         "pattern-value", at(N_COMPOSITION, ".category[0].coding[0].code")),
    case("COMP-CONFIDENTIALITY", N, "restricted", put(N_COMPOSITION, "confidentiality", value="R"),
         "fixed-value", at(N_COMPOSITION, ".confidentiality")),
    case("COMP-CONFIDENTIALITY", C, "restricted", put(C_COMPOSITION, "confidentiality", value="R"),
         "pattern-value", at(C_COMPOSITION, ".confidentiality")),
    case("COMP-LANGUAGE", N, "english", put(N_COMPOSITION, "language", value="en"),
         "fixed-value", at(N_COMPOSITION, ".language")),
    case("COMP-LANGUAGE", C, "english", put(C_COMPOSITION, "language", value="en"),
         "pattern-value", at(C_COMPOSITION, ".language")),
    case("COMP-SUBJECT", N, "missing", drop(N_COMPOSITION, "subject"),
         "card-min", at(N_COMPOSITION, ".subject")),
    case("COMP-SUBJECT", C, "organization", refer(C_COMPOSITION, "subject", to=C_ORGANIZATION),
         "target-profile", at(C_COMPOSITION, ".subject.reference")),
    case("COMP-DATE", N, "missing", drop(N_COMPOSITION, "date"),
         "card-min", at(N_COMPOSITION, ".date")),
    case("COMP-DATE", C, "missing", drop(C_COMPOSITION, "date"),
         "card-min", at(C_COMPOSITION, ".date")),
    case("COMP-AUTHOR-INSTITUTION", N, "practitioner-only", drop(N_COMPOSITION, "author", 0),
         "slice-card-min", at(N_COMPOSITION, ".author")),
    case("COMP-AUTHOR-INSTITUTION", C, "practitioner-only", cl_author_practitioner_only,
         "slice-card-min", at(C_COMPOSITION, ".author")),
    case("COMP-AUTHOR-INSTITUTION", C, "two-organizations", repeat(C_COMPOSITION, "author"),
         "slice-card-max", at(C_COMPOSITION, ".author")),
    case("COMP-AUTHOR-TYPE", N, "practitionerrole", refer(N_COMPOSITION, "author", 1, to=N_ROLE),
         "target-profile", at(N_COMPOSITION, ".author[1].reference")),
    case("COMP-AUTHOR-TYPE", C, "patient", add_reference(C_COMPOSITION, "author", to=C_PATIENT),
         "slice-unmatched", at(C_COMPOSITION, ".author[1]")),
    case("COMP-AUTHOR-MAX", N, "three", third_author,
         "card-max", at(N_COMPOSITION, ".author")),
    case("COMP-AUTHOR-MAX", C, "three", cl_three_authors,
         None, at(C_COMPOSITION, ".author")),
    case("COMP-ATTESTER", N, "organization-party", attester_organization,
         "target-profile", at(N_COMPOSITION, ".attester[0].party.reference")),
    case("COMP-ATTESTER", C, "two", cl_two_attesters,
         "card-max", at(C_COMPOSITION, ".attester")),
    case("COMP-TITLE", N, "other-cpr", put(N_COMPOSITION, "title", value="Journalnotat for 3001749995"),
         "COMP-TITLE", at(N_COMPOSITION, ".title")),
    case("COMP-TITLE", N, "free-text", put(N_COMPOSITION, "title", value="Årskontrol, lænderyg"),
         "COMP-TITLE", at(N_COMPOSITION, ".title")),
    # The error in MedCom's own ConditionList examples (§18.5): another patient's CPR in the title.
    case("COMP-TITLE", C, "other-cpr", put(C_COMPOSITION, "title", value="Diagnoseoversigt for 2509479989"),
         "COMP-TITLE", at(C_COMPOSITION, ".title")),
    case("COMP-EVENT", N, "missing", drop(N_COMPOSITION, "event"),
         "card-min", at(N_COMPOSITION, ".event")),
    case("COMP-EVENT", N, "no-start", drop(N_COMPOSITION, "event", 0, "period", "start"),
         "card-min", at(N_COMPOSITION, ".event[0].period.start")),
    case("COMP-EVENT", N, "two", repeat(N_COMPOSITION, "event"),
         "card-max", at(N_COMPOSITION, ".event")),
    case("COMP-EVENT-DATETIME", N, "start-date-only",
         put(N_COMPOSITION, "event", 0, "period", "start", value="2026-11-20"),
         "invariant:medcom-datetime-has-time-offset-zulu", at(N_COMPOSITION, ".event[0].period.start")),
    case("COMP-EVENT-DATETIME", N, "end-no-offset",
         put(N_COMPOSITION, "event", 0, "period", "end", value="2026-11-20T09:40:00"),
         "invariant:medcom-datetime-has-time-offset-zulu", at(N_COMPOSITION, ".event[0].period.end")),
    case("NOTES-COMP-DATE-ORDER", N, "updated-before-created", dates_reversed,
         "NOTES-COMP-DATE-ORDER", at(N_COMPOSITION, ".date")),
    case("COMP-SECTION", N, "missing", drop(N_COMPOSITION, "section"),
         "card-min", at(N_COMPOSITION, ".section")),
    case("COMP-SECTION", C, "missing", drop(C_COMPOSITION, "section"),
         "card-min", at(C_COMPOSITION, ".section")),
    case("NOTES-COMP-SECTION", N, "two", repeat(N_COMPOSITION, "section"),
         "card-max", at(N_COMPOSITION, ".section")),
    case("NOTES-COMP-SECTION-ENTRY", N, "two-notes", repeat(N_COMPOSITION, "section", 0, "entry"),
         "card-max", at(N_COMPOSITION, ".section[0].entry")),
    case("NOTES-COMP-SECTION-ENTRY", N, "none", section_without_entry,
         "card-min", at(N_COMPOSITION, ".section[0].entry")),
    case("NOTES-COMP-SECTION-ENTRY-TYPE", N, "patient",
         refer(N_COMPOSITION, "section", 0, "entry", 0, to=N_PATIENT),
         "target-profile", at(N_COMPOSITION, ".section[0].entry[0].reference")),
    case("CL-COMP-SECTION-ENTRY", C, "none", drop(C_COMPOSITION, "section", 0, "entry"),
         "card-min", at(C_COMPOSITION, ".section[0].entry")),
    case("CL-COMP-SECTION-ENTRY-TYPE", C, "patient",
         refer(C_COMPOSITION, "section", 0, "entry", 0, to=C_PATIENT),
         "target-profile", at(C_COMPOSITION, ".section[0].entry[0].reference")),

    # ---- the note: MedComNotesObservation (§5) ----
    case("NOTES-OBS-STATUS", N, "preliminary", put(N_OBSERVATION, "status", value="preliminary"),
         "pattern-value", at(N_OBSERVATION, ".status")),
    case("NOTES-OBS-CODE", N, "other-snomed-code",
         put(N_OBSERVATION, "code", "coding", 0, "code", value="371531000"),
         "fixed-value", at(N_OBSERVATION, ".code.coding[0].code")),
    # The SNOMED URI typo of the Notes Observation intro (§18.13): no coding:SNOMEDCT is left.
    case("NOTES-OBS-CODE", N, "snomed-uri-typo",
         put(N_OBSERVATION, "code", "coding", 0, "system", value="http://www.snomed.org/"),
         "slice-card-min", at(N_OBSERVATION, ".code.coding")),
    case("NOTES-OBS-CODE", N, "two-snomed-codings", repeat(N_OBSERVATION, "code", "coding"),
         "slice-card-max", at(N_OBSERVATION, ".code.coding")),
    # effective[x] is absent as a whole: FHIRPath names a choice element without its type suffix.
    case("NOTES-OBS-EFFECTIVE", N, "missing", drop(N_OBSERVATION, "effectiveDateTime"),
         "card-min", at(N_OBSERVATION, ".effective")),
    case("NOTES-OBS-EFFECTIVE", N, "period", effective_as_period,
         "type", at(N_OBSERVATION, ".effectivePeriod")),
    case("NOTES-OBS-EFFECTIVE-DATETIME", N, "date-only",
         put(N_OBSERVATION, "effectiveDateTime", value="2026-11-20"),
         "invariant:medcom-datetime-has-time-offset-zulu", at(N_OBSERVATION, ".effectiveDateTime")),
    # One hour apart, as in MedCom's "maximum" example (§18.7): Z written for a +01:00 time.
    case("NOTES-OBS-EFFECTIVE-EQ-EVENT", N, "one-hour-off",
         put(N_OBSERVATION, "effectiveDateTime", value="2026-11-20T09:15:00Z"),
         "NOTES-OBS-EFFECTIVE-EQ-EVENT", at(N_OBSERVATION, ".effectiveDateTime"), severity=WARNING),
    case("NOTES-OBS-IDENTIFIER", N, "missing", drop(N_OBSERVATION, "identifier"),
         "card-min", at(N_OBSERVATION, ".identifier")),
    case("NOTES-OBS-IDENTIFIER", N, "no-value", drop(N_OBSERVATION, "identifier", 0, "value"),
         "card-min", at(N_OBSERVATION, ".identifier[0].value")),
    case("NOTES-OBS-IDENTIFIER", N, "two", repeat(N_OBSERVATION, "identifier"),
         "card-max", at(N_OBSERVATION, ".identifier")),
    case("NOTES-OBS-SUBJECT", N, "missing", drop(N_OBSERVATION, "subject"),
         "card-min", at(N_OBSERVATION, ".subject")),
    case("NOTES-OBS-SUBJECT", N, "organization", refer(N_OBSERVATION, "subject", to=N_ORGANIZATION),
         "target-profile", at(N_OBSERVATION, ".subject.reference")),
    case("NOTES-OBS-PERFORMER", N, "no-organization", drop(N_OBSERVATION, "performer", 0),
         "slice-card-min", at(N_OBSERVATION, ".performer")),
    case("NOTES-OBS-PERFORMER", N, "patient", refer(N_OBSERVATION, "performer", 2, to=N_PATIENT),
         "slice-unmatched", at(N_OBSERVATION, ".performer[2]")),
    case("NOTES-OBS-PERFORMER", N, "two-practitioners",
         refer(N_OBSERVATION, "performer", 1, to=N_PRACTITIONER),
         "slice-card-max", at(N_OBSERVATION, ".performer")),
    case("NOTES-OBS-ATTACHMENT", N, "missing", drop(N_OBSERVATION, "extension"),
         "slice-card-min", at(N_OBSERVATION, ".extension")),
    case("NOTES-OBS-ATTACHMENT", N, "two", repeat(N_OBSERVATION, "extension"),
         "slice-card-max", at(N_OBSERVATION, ".extension")),
    case("NOTES-OBS-ATTACHMENT-CONTENTTYPE", N, "text-plain",
         put(N_OBSERVATION, "extension", 0, "valueAttachment", "contentType", value="text/plain"),
         "fixed-value", at(N_OBSERVATION, ".extension[0].valueAttachment.contentType")),
    case("NOTES-OBS-ATTACHMENT-DATA", N, "missing",
         drop(N_OBSERVATION, "extension", 0, "valueAttachment", "data"),
         "card-min", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-ATTACHMENT-BASE64", N, "not-base64",
         put(N_OBSERVATION, "extension", 0, "valueAttachment", "data", value="Ikke base64!"),
         "datatype", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-ATTACHMENT-BASE64", N, "latin-1", note_bytes_latin1,
         "NOTES-OBS-ATTACHMENT-BASE64", at(N_OBSERVATION, NOTE)),

    # ---- the note's content (prose, and kroniker's NOTES-OBS-NOTE-ACTIVE: findings.md §4) ----
    case("NOTES-OBS-NOTE-EMPTY", N, "whitespace", note_html("  \n\t "),
         "NOTES-OBS-NOTE-EMPTY", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-EMPTY", N, "empty-paragraphs", note_html("<p> </p><br/><p></p>"),
         "NOTES-OBS-NOTE-EMPTY", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-MARKUP", N, "link",
         note_html('<p>Se <a href="https://www.sundhed.dk/">sundhed.dk</a></p>'),
         "NOTES-OBS-NOTE-MARKUP", at(N_OBSERVATION, NOTE), severity=WARNING),
    case("NOTES-OBS-NOTE-MARKUP", N, "inline-image",
         note_html('<p>Smertetegning: <img src="data:image/png;base64,iVBORw0KGgo="/></p>'),
         "NOTES-OBS-NOTE-MARKUP", at(N_OBSERVATION, NOTE), severity=WARNING),
    case("NOTES-OBS-NOTE-MARKUP", N, "table", note_html("<table><tr><td>NRS</td><td>4/10</td></tr></table>"),
         "NOTES-OBS-NOTE-MARKUP", at(N_OBSERVATION, NOTE), severity=WARNING),
    case("NOTES-OBS-NOTE-MARKUP", N, "style-element",
         note_html("<style>p {color: red}</style><p>Smerter stabile.</p>"),
         "NOTES-OBS-NOTE-MARKUP", at(N_OBSERVATION, NOTE), severity=WARNING),
    case("NOTES-OBS-NOTE-MARKUP", N, "style-attribute",
         note_html('<p style="color:red">Smerter stabile.</p>'),
         "NOTES-OBS-NOTE-MARKUP", at(N_OBSERVATION, NOTE), severity=WARNING),
    case("NOTES-OBS-NOTE-MARKUP", N, "not-well-formed", note_html("<p>Smerter <b>stabile</p>"),
         "NOTES-OBS-NOTE-MARKUP", at(N_OBSERVATION, NOTE), severity=WARNING),
    case("NOTES-OBS-NOTE-ACTIVE", N, "script", note_html("<p>Smerter stabile.</p><script>alert(1)</script>"),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-ACTIVE", N, "onclick", note_html('<p onclick="alert(1)">Smerter stabile.</p>'),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-ACTIVE", N, "javascript-href",
         note_html('<p><a href="javascript:alert(1)">Se her</a></p>'),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-ACTIVE", N, "iframe",
         note_html('<p>Smerter stabile.</p><iframe src="https://example.org/"></iframe>'),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-ACTIVE", N, "external-image",
         note_html('<p>Smerter stabile.<img src="http://example.org/pixel.gif"/></p>'),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    # MedCom's test notes write XHTML with an undeclared x: prefix (findings.md §4); a script is still one.
    case("NOTES-OBS-NOTE-ACTIVE", N, "prefixed-script",
         note_html("<x:p>Smerter stabile.</x:p><x:script>alert(1)</x:script>"),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    case("NOTES-OBS-NOTE-ACTIVE", N, "css-url",
         note_html('<p style="background:url(http://example.org/pixel.gif)">Smerter stabile.</p>'),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    # Well-formed XML whose CDATA is inert text; but the note is text/html, and an HTML parser ends the
    # bogus comment "<![CDATA[ >" at the first ">", so the <script> after it runs.
    case("NOTES-OBS-NOTE-ACTIVE", N, "cdata-read-as-html",
         note_html("<p>Smerter stabile.</p><![CDATA[ ><script>alert(1)</script> ]]>"),
         "NOTES-OBS-NOTE-ACTIVE", at(N_OBSERVATION, NOTE)),
    # Literal backslash-n and backslash-t in the text, not a line break and a tab.
    case("NOTES-OBS-NOTE-FORMAT", N, "escaped-newline-and-tab",
         note_html("Smerter stabile.\\n\\tNRS 4/10 i hvile."),
         "NOTES-OBS-NOTE-FORMAT", at(N_OBSERVATION, NOTE), severity=WARNING),

    # ---- a diagnosis: MedComConditionListCondition (§6) ----
    case("CL-COND-CATEGORY-STATUS", C, "missing", drop(C_CONDITION, "category", 0),
         "slice-card-min", at(C_CONDITION, ".category")),
    case("CL-COND-CATEGORY-STATUS", C, "two",
         append(C_CONDITION, "category", value={"coding": [{"system": SNOMED, "code": "723506003"}]}),
         "slice-card-max", at(C_CONDITION, ".category")),
    case("CL-COND-CATEGORY-STATUS", C, "not-snomed",
         put(C_CONDITION, "category", 0, "coding", 0, "system", value="urn:oid:1.2.208.176.2.4"),
         "pattern-value", at(C_CONDITION, ".category[0].coding[0].system")),
    case("CL-COND-CATEGORY-STATUS-CODE", C, "extra-code",
         append(C_CONDITION, "category", 0, "coding",
                value={"system": SNOMED, "code": "55561003", "display": "Active"}),
         "binding", at(C_CONDITION, ".category[0].coding[1].code")),
    # The slicing discriminates by the value of coding.code (bound to the status value set): a SNOMED category
    # with another code is no status category at all. The missing slice is reported once; the category that fits
    # no slice of the open slicing raises nothing (test_an_item_that_fits_no_open_slice_raises_nothing).
    case("CL-COND-CATEGORY-STATUS", C, "other-code", cl_status_category_code("55561003", "Active"),
         "slice-card-min", at(C_CONDITION, ".category")),
    case("CL-COND-CATEGORY-TYPE", C, "extra-code",
         append(C_CONDITION, "category", 1, "coding",
                value={"system": CONDITION_CATEGORY, "code": "health-concern"}),
         "binding", at(C_CONDITION, ".category[1].coding[1].code")),
    case("CL-COND-CATEGORY-TYPE", C, "two", cl_second_type_category,
         "slice-card-max", at(C_CONDITION, ".category")),
    case("CL-COND-RECORDEDDATE", C, "missing", drop(C_CONDITION, "recordedDate"),
         "card-min", at(C_CONDITION, ".recordedDate")),
    case("CL-COND-SUBJECT", C, "missing", drop(C_CONDITION, "subject"),
         "card-min", at(C_CONDITION, ".subject")),
    case("CL-COND-SUBJECT", C, "organization", refer(C_CONDITION, "subject", to=C_ORGANIZATION),
         "target-profile", at(C_CONDITION, ".subject.reference")),
    case("CL-COND-NOTE-MAX", C, "two",
         put(C_CONDITION, "note", value=[{"text": "Tillæg 1"}, {"text": "Tillæg 2"}]),
         "card-max", at(C_CONDITION, ".note")),
    case("CL-COND-NOTE-SHARED", C, "one", put(C_CONDITION, "note", value=[{"text": "Tillægstekst"}]),
         "CL-COND-NOTE-SHARED", at(C_CONDITION, ".note"), severity=WARNING),
    # con-4 is an invariant of Condition (abatement against clinicalStatus): reported at the Condition.
    case("CL-COND-CON4", C, "abated-but-active", cl_abated_but_active,
         "invariant:con-4", at(C_CONDITION)),
    case("CL-COND-CLINICALSTATUS-PLI", C, "missing", drop(C_CONDITION, "clinicalStatus"),
         "CL-COND-CLINICALSTATUS-PLI", at(C_CONDITION, ".clinicalStatus"), severity=WARNING),

    # ---- Patient (§7) ----
    case("PAT-IDENTIFIER-CPR", N, "two",
         append(N_PATIENT, "identifier", value={"system": "urn:oid:1.2.208.176.1.2", "value": "3001749995"}),
         "card-max", at(N_PATIENT, ".identifier")),
    case("PAT-IDENTIFIER-CPR", N, "replacement-cpr", replacement_cpr(N_PATIENT),
         "slice-card-min", at(N_PATIENT, ".identifier")),
    case("PAT-IDENTIFIER-CPR", C, "replacement-cpr", replacement_cpr(C_PATIENT),
         "slice-card-min", at(C_PATIENT, ".identifier")),
    case("PAT-CPR-FORMAT", N, "31-february", put(N_PATIENT, "identifier", 0, "value", value="3102629996"),
         "invariant:cpr", at(N_PATIENT, ".identifier[0].value")),
    case("PAT-CPR-FORMAT", C, "month-13", put(C_PATIENT, "identifier", 0, "value", value="1513629996"),
         "invariant:cpr", at(C_PATIENT, ".identifier[0].value")),
    case("PAT-NAME", N, "no-given", drop(N_PATIENT, "name", 0, "given"),
         "card-min", at(N_PATIENT, ".name[0].given")),
    case("PAT-NAME", N, "two", append(N_PATIENT, "name", value={"use": "nickname", "given": ["Bente"]}),
         "card-max", at(N_PATIENT, ".name")),
    case("PAT-NAME", C, "not-official", put(C_PATIENT, "name", 0, "use", value="usual"),
         "slice-card-min", at(C_PATIENT, ".name")),
    case("PAT-NAME", C, "no-family", drop(C_PATIENT, "name", 0, "family"),
         "card-min", at(C_PATIENT, ".name[0].family")),
    case("PAT-GENDER", N, "missing", drop(N_PATIENT, "gender"),
         "card-min", at(N_PATIENT, ".gender")),
    case("PAT-GENDER", C, "missing", drop(C_PATIENT, "gender"),
         "card-min", at(C_PATIENT, ".gender")),
    case("PAT-BIRTHDATE", N, "missing", drop(N_PATIENT, "birthDate"),
         "card-min", at(N_PATIENT, ".birthDate")),
    case("PAT-BIRTHDATE", C, "missing", drop(C_PATIENT, "birthDate"),
         "card-min", at(C_PATIENT, ".birthDate")),

    # ---- Organization (§8) ----
    case("ORG-SOR", N, "missing", drop(N_ORGANIZATION, "identifier", 0),
         "slice-card-min", at(N_ORGANIZATION, ".identifier")),
    case("ORG-SOR", C, "two", repeat(C_ORGANIZATION, "identifier"),
         "slice-card-max", at(C_ORGANIZATION, ".identifier")),
    case("ORG-SOR-FORMAT", N, "seven-digits", put(N_ORGANIZATION, "identifier", 0, "value", value="4817510"),
         "invariant:min-digits-sor", at(N_ORGANIZATION, ".identifier[0].value")),
    case("ORG-SOR-FORMAT", C, "prefixed",
         put(C_ORGANIZATION, "identifier", 0, "value", value="SOR481751000016007"),
         "invariant:min-digits-sor", at(C_ORGANIZATION, ".identifier[0].value")),
    case("ORG-NAME", N, "blank", put(N_ORGANIZATION, "name", value="   "),
         "datatype", at(N_ORGANIZATION, ".name")),
    case("ORG-NAME", C, "missing", drop(C_ORGANIZATION, "name"),
         "card-min", at(C_ORGANIZATION, ".name")),

    # ---- Practitioner and PractitionerRole (§9) ----
    case("PRACT-IDENTIFIER", N, "missing", drop(N_PRACTITIONER, "identifier"),
         "card-min", at(N_PRACTITIONER, ".identifier")),
    case("PRACT-IDENTIFIER", N, "no-system", drop(N_PRACTITIONER, "identifier", 0, "system"),
         "card-min", at(N_PRACTITIONER, ".identifier[0].system")),
    case("PRACT-NAME", N, "no-family", drop(N_PRACTITIONER, "name", 0, "family"),
         "card-min", at(N_PRACTITIONER, ".name[0].family")),
    case("PRACT-NAME", C, "no-given", cl_practitioner_without_given,
         "card-min", at(C_ADDED, ".name[0].given")),
    case("ROLE-IDENTIFIER", N, "missing", drop(N_ROLE, "identifier"),
         "card-min", at(N_ROLE, ".identifier")),
    case("ROLE-ORGANIZATION", N, "missing", drop(N_ROLE, "organization"),
         "card-min", at(N_ROLE, ".organization")),
    case("ROLE-ORGANIZATION", N, "patient", refer(N_ROLE, "organization", to=N_PATIENT),
         "target-profile", at(N_ROLE, ".organization.reference")),
    # The xor invariant is one of PractitionerRole, so it is reported at the PractitionerRole.
    case("ROLE-CODE-XOR-TEXT", N, "coding-and-text", role_code_and_text,
         "invariant:medcom-core-practitionerrole-code-xor-text", at(N_ROLE)),
    case("ROLE-CODE-XOR-TEXT", N, "neither", role_code_display_only,
         "invariant:medcom-core-practitionerrole-code-xor-text", at(N_ROLE)),
]

CASE_RULES = {p.values[0] for p in CASES}
OWN_RULES = {"NOTES-OBS-NOTE-ACTIVE"}  # kroniker's own rule (findings.md §4), not a row of §17


# -- the tests ----------------------------------------------------------------------------------------------

def validate(validator: Validator, doc: Doc) -> Report:
    return validator.validate(json.dumps(doc, ensure_ascii=False).encode("utf-8"))


def listing(report: Report) -> str:
    lines = [f"  {f.severity.label} {'/'.join(f.codes)} at {f.location}" for f in report]
    return "\n".join(lines) or "  (none)"


@pytest.mark.parametrize("build", [shared_note, diagnosis_card], ids=KIND.get)
def test_unmutated_document_is_valid(validator: Validator, build: Builder) -> None:
    report = validate(validator, build())
    assert report.errors() == [], "\n" + listing(report)
    # Nor does it carry a warning the cases expect: a warning case must come from its mutation.
    assert not report.rules(WARNING) & CASE_RULES, "\n" + listing(report)


@pytest.mark.parametrize(("rule", "build", "mutate", "code", "location", "severity"), CASES)
def test_rule(validator: Validator, rule: str, build: Builder, mutate: Mutation, code: str | None,
              location: str, severity: Severity) -> None:
    doc = build()
    mutate(doc)
    report = validate(validator, doc)

    def expected(f: Finding) -> bool:
        return rule in f.codes and (code is None or f.code == code) and f.location == location

    hits = [f for f in report if expected(f)]
    assert hits, f"no {code or '*'} / {rule} at {location}; found:\n{listing(report)}"
    assert {f.severity for f in hits} == {severity}, f"§17 says {severity.label}:\n{listing(report)}"


# -- every row of §17 has a case, for every standard it applies to -----------------------------------------

def catalogue(spec: Path) -> dict[str, set[str]]:
    """§17's rule ids, each with the standards ("notes", "cl") it applies to."""
    section = spec.read_text(encoding="utf-8").split("## 17. Rule catalogue", 1)[1].split("\n## ", 1)[0]
    rules: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not re.fullmatch(r"[A-Z][A-Z0-9-]*( / -?[A-Z0-9-]+)*", cells[0]):
            continue  # prose, the header or the separator row
        parts = [p.strip() for p in cells[0].split("/")]
        # "COMP-IDENTIFIER / -UUID" names COMP-IDENTIFIER and COMP-IDENTIFIER-UUID.
        ids = [parts[0] + p if p.startswith("-") else p for p in parts]
        applies = {kind for letter, kind in (("N", "notes"), ("C", "cl")) if letter in cells[1]}
        for rule_id in ids:
            rules[rule_id] = applies
    return rules


def test_every_catalogue_rule_has_a_case() -> None:
    rules = catalogue(shared_path("spec", "medcom-standards.md"))
    assert len(rules) > 80, "the §17 table was not read"
    assert CASE_RULES - rules.keys() == OWN_RULES, "cases for rule ids §17 does not have"
    covered = {(p.values[0], KIND[p.values[1]]) for p in CASES}
    missing = sorted(f"{r}:{kind}" for r, kinds in rules.items() for kind in kinds
                     if (r, kind) not in covered)
    assert missing == [], "§17 rules without a case for a standard they apply to"


def test_an_item_that_fits_no_open_slice_raises_nothing(validator: Validator) -> None:
    """Issue 10: a missing required slice is reported once, and is not explained by holding another item to it."""
    doc = C()
    cl_status_category_code("55561003", "Active")(doc)
    report = validate(validator, doc)
    errors = [f for f in report if f.severity >= Severity.WARNING]
    assert [(f.code, f.location) for f in errors] == [("slice-card-min", at(C_CONDITION, ".category"))]
