"""Documents of our own making: Shared Notes and diagnosis cards for fictitious low back pain patients.

Everything here is written by kroniker (no MedCom example is copied). The conformance suite shares them with the
system under test; `python tests/builders.py` rewrites examples/ from them, and a test checks that the two agree.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import html
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kroniker.validators.identifiers import cpr_birth_date

NOTES = "http://medcomfhir.dk/ig/notes/StructureDefinition"
CL = "http://medcomfhir.dk/ig/conditionlist/StructureDefinition"
DOCUMENT = "http://medcomfhir.dk/ig/document/StructureDefinition"
VALUE_ATTACHMENT = "http://medcomfhir.dk/ig/core/StructureDefinition/medcom-observation-value-attachment-extension"
CPR = "urn:oid:1.2.208.176.1.2"
SOR = "urn:oid:1.2.208.176.1.1"
YDER = "urn:oid:1.2.208.176.1.4"
BASE = "https://kroniker.example/fhir"

# A fictitious patient and clinic (the CPR passes DK Core's format rule; it belongs to nobody we know of).
PATIENT: dict[str, Any] = {"cpr": "1505629996", "family": "Lænderyg", "given": ["Bente", "Test"], "gender": "female",
           "birthDate": "1962-05-15"}
CLINIC = {"sor": "481751000016007", "ydernummer": "054321", "name": "Lægerne i Kronikergården"}
GP: dict[str, Any] = {"family": "Holm", "given": ["Jens", "Peter"]}

NOTE_HTML = (
    "<p><b>Årskontrol, kroniske lænderygsmerter</b></p>"
    "<p>Smerter stabile, NRS 4/10 i hvile. Går 2 km dagligt. STarT Back: lav risiko.</p>"
    "<p><u>Mål og planer aftalt med patienten</u><br/>"
    "1. Gå 30 minutter fem dage om ugen.<br/>"
    "2. Fortsætte hjemmeøvelser fra fysioterapeut.<br/>"
    "3. Kontrol om 12 måneder; tidligere ved forværring.</p>"
)


def _id(name: str) -> str:
    """Stable UUIDs, so the documents do not change each time they are built."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kroniker:{name}"))


def _narrative(resource: dict[str, Any], rows: list[tuple[str, str]], status: str = "generated") -> dict[str, Any]:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    div = (f'<div xmlns="http://www.w3.org/1999/xhtml"><p><b>{resource["resourceType"]} {resource["id"]}</b></p>'
           f"<table>{cells}</table></div>")
    return {"status": status, "div": div}


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"{BASE}/{resource['resourceType']}/{resource['id']}", "resource": resource}


def patient(version: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {
        "resourceType": "Patient", "id": _id("patient"),
        "meta": {"profile": [f"{DOCUMENT}/medcom-document-patient"]},
        "identifier": [{"system": CPR, "value": PATIENT["cpr"]}],
        "name": [{"use": "official", "family": PATIENT["family"], "given": PATIENT["given"]}],
        "gender": PATIENT["gender"], "birthDate": PATIENT["birthDate"],
    }
    p["text"] = _narrative(p, [("CPR", PATIENT["cpr"]), ("Navn", f"{' '.join(PATIENT['given'])} {PATIENT['family']}"),
                               ("Køn", PATIENT["gender"]), ("Fødselsdato", PATIENT["birthDate"])])
    return _ordered(p)


def organization(profile: str) -> dict[str, Any]:
    o: dict[str, Any] = {
        "resourceType": "Organization", "id": _id("clinic"),
        "meta": {"profile": [profile]},
        "identifier": [{"system": SOR, "value": CLINIC["sor"]}, {"system": YDER, "value": CLINIC["ydernummer"]}],
        "name": CLINIC["name"],
    }
    o["text"] = _narrative(o, [("SOR", CLINIC["sor"]), ("Ydernummer", CLINIC["ydernummer"]), ("Navn", CLINIC["name"])])
    return _ordered(o)


def practitioner(with_identifier: bool = True) -> dict[str, Any]:
    pr: dict[str, Any] = {
        "resourceType": "Practitioner", "id": _id("gp"),
        "meta": {"profile": [f"{DOCUMENT}/medcom-document-practitioner"]},
        "name": [{"family": GP["family"], "given": GP["given"]}],
    }
    if with_identifier:
        pr["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id('gp-identifier')}"}]
    pr["text"] = _narrative(pr, [("Navn", f"{' '.join(GP['given'])} {GP['family']}")])
    return _ordered(pr)


def practitioner_role() -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "PractitionerRole", "id": _id("gp-role"),
        "meta": {"profile": [f"{DOCUMENT}/medcom-document-practitionerrole"]},
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id('gp-role-identifier')}"}],
        "practitioner": {"reference": f"Practitioner/{_id('gp')}"},
        "organization": {"reference": f"Organization/{_id('clinic')}"},
        "code": [{"coding": [{"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/"
                                        "medcom-core-PractitionerRolesSKSadministrativ",
                              "code": "speciallaegeipraksis"}]}],
    }
    r["text"] = _narrative(r, [("Behandler", f"Practitioner/{_id('gp')}"),
                               ("Organisation", f"Organization/{_id('clinic')}"),
                               ("Rolle", "speciallaegeipraksis")])
    return _ordered(r)


def shared_note(note_html: str = NOTE_HTML, *, created: str = "2026-11-20T09:15:00+01:00",
                updated: str = "2026-11-20T09:40:00+01:00", assembled: str = "2026-11-21T00:05:00+01:00",
                name: str = "arskontrol") -> dict[str, Any]:
    """A MedCom Shared Notes 1.0.0 document: a GP's annual control note for chronic low back pain."""
    cpr = PATIENT["cpr"]
    obs_id, comp_id = _id(f"{name}-observation"), _id(f"{name}-composition")
    org = organization(f"{DOCUMENT}/medcom-document-organization")
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": obs_id,
        "meta": {"profile": [f"{NOTES}/medcom-notes-observation"]},
        "extension": [{"url": VALUE_ATTACHMENT, "valueAttachment": {
            "contentType": "text/html", "data": base64.b64encode(note_html.encode("utf-8")).decode("ascii")}}],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id(f'{name}-note-identifier')}"}],
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "866144008", "display": "Encounter note"}]},
        "subject": {"reference": f"Patient/{_id('patient')}"},
        "effectiveDateTime": created,
        "performer": [{"reference": f"Organization/{_id('clinic')}"},
                      {"reference": f"PractitionerRole/{_id('gp-role')}"},
                      {"reference": f"Practitioner/{_id('gp')}"}],
    }
    obs["text"] = _narrative(obs, [("Status", "final"), ("Kode", "http://snomed.info/sct 866144008 Encounter note"),
                                   ("Patient", f"Patient/{_id('patient')}"), ("Oprettet", created),
                                   ("Udført af", f"Organization/{_id('clinic')}"), ("Indholdstype", "text/html")],
                             status="extensions")
    comp: dict[str, Any] = {
        "resourceType": "Composition", "id": comp_id,
        "meta": {"profile": [f"{NOTES}/medcom-notes-composition|1.0"]},
        "language": "da",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id(f'{name}-document')}"},
        "status": "final",
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "866144008", "display": "Encounter note"}]},
        "category": [{"coding": [{"system": "http://medcomfhir.dk/ig/xdsmetadata/CodeSystem/MedCom-ihe-classcode-CS",
                                  "code": "001", "display": "Klinisk rapport"}]}],
        "subject": {"reference": f"Patient/{_id('patient')}"},
        "date": updated,
        "author": [{"reference": f"Organization/{_id('clinic')}"}, {"reference": f"Practitioner/{_id('gp')}"}],
        "title": f"Journalnotat for {cpr}",
        "confidentiality": "N",
        "event": [{"period": {"start": created}}],
        "section": [{"entry": [{"reference": f"Observation/{obs_id}"}]}],
    }
    comp["text"] = _narrative(comp, [
        ("Titel", comp["title"]), ("Status", "final"), ("Type", "http://snomed.info/sct 866144008 Encounter note"),
        ("Kategori", "001 Klinisk rapport"), ("Patient", f"Patient/{_id('patient')}"), ("Dato", updated),
        ("Forfatter", f"Organization/{_id('clinic')}, Practitioner/{_id('gp')}"), ("Fortrolighed", "N"),
        ("Sprog", "da"), ("Oprettet", created), ("Notat", f"Observation/{obs_id}"),
        ("Profil", comp["meta"]["profile"][0])])
    bundle = {
        "resourceType": "Bundle", "id": _id(f"{name}-bundle"),
        "meta": {"profile": [f"{NOTES}/medcom-notes-bundle"]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id(f'{name}-bundle-identifier')}"},
        "type": "document",
        "timestamp": assembled,
        "entry": [_entry(_ordered(comp)), _entry(_ordered(obs)), _entry(patient()), _entry(org),
                  _entry(practitioner()), _entry(practitioner_role())],
    }
    return bundle


def diagnosis_card(*, recorded: str = "2026-11-20", assembled: str = "2026-11-21T00:05:00+01:00") -> dict[str, Any]:
    """A MedCom ConditionList 1.0.1 document: the GP's diagnosis card with chronic low back pain."""
    cpr = PATIENT["cpr"]
    cond_id = _id("cl-condition-lbp")
    cond: dict[str, Any] = {
        "resourceType": "Condition", "id": cond_id,
        "meta": {"profile": [f"{CL}/medcom-conditionlist-condition"]},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "category": [
            {"coding": [{"system": "http://snomed.info/sct", "code": "15240007", "display": "Current"}]},
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                         "code": "problem-list-item", "display": "Problem List Item"}]},
        ],
        "code": {"coding": [{"system": "urn:oid:1.2.208.176.2.4.12", "code": "DM545", "display": "Lændesmerter"},
                            {"system": "urn:oid:1.2.208.176.2.31", "code": "L03", "display": "Lændesymptomer"}],
                 "text": "Lændesmerter"},
        "subject": {"reference": f"Patient/{_id('patient')}"},
        "onsetDateTime": "2024-03-01",
        "recordedDate": recorded,
    }
    cond["text"] = _narrative(cond, [("Diagnose", "DM545 Lændesmerter / ICPC-2 L03"), ("Status", "Aktuel (15240007)"),
                                     ("Type", "Forløbsdiagnose"), ("Klinisk status", "active"),
                                     ("Debut", "2024-03-01"), ("Registreret", recorded),
                                     ("Patient", f"Patient/{_id('patient')}")])
    comp: dict[str, Any] = {
        "resourceType": "Composition", "id": _id("cl-composition"),
        "meta": {"profile": [f"{CL}/medcom-conditionlist-composition"]},
        "language": "da",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11450-4", "display": "Problem list - Reported"}]},
        "subject": {"reference": f"Patient/{_id('patient')}"},
        "date": f"{recorded}T10:00:00+01:00",
        "author": [{"reference": f"Organization/{_id('clinic')}"}],
        "title": f"Diagnoseoversigt for {cpr}",
        "confidentiality": "N",
        "section": [{"text": {"status": "generated",
                              "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                                     "<p>DM545 Lændesmerter (aktuel, forløbsdiagnose)</p></div>"},
                     "entry": [{"reference": f"Condition/{cond_id}"}]}],
    }
    comp["text"] = _narrative(comp, [("Titel", comp["title"]), ("Type", "http://loinc.org 11450-4"),
                                     ("Patient", f"Patient/{_id('patient')}"), ("Dato", comp["date"]),
                                     ("Forfatter", f"Organization/{_id('clinic')}"),
                                     ("Diagnoser", f"Condition/{cond_id}")])
    patient_cl = patient()
    patient_cl["meta"] = {"profile": [f"{DOCUMENT}/medcom-document-patient"]}
    return {
        "resourceType": "Bundle", "id": _id("cl-bundle"),
        "meta": {"profile": [f"{CL}/medcom-conditionlist-bundle"]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id('cl-bundle-identifier')}"},
        "type": "document",
        "timestamp": assembled,
        "entry": [_entry(_ordered(comp)), _entry(patient_cl),
                  _entry(organization(f"{CL}/medcom-conditionlist-organization")), _entry(_ordered(cond))],
    }


_ORDER = ["resourceType", "id", "meta", "language", "text", "extension", "identifier"]


def _ordered(resource: dict[str, Any]) -> dict[str, Any]:
    """Keys in FHIR's usual order, for documents a reader recognises."""
    keys = [k for k in _ORDER if k in resource] + [k for k in resource if k not in _ORDER]
    return {k: resource[k] for k in keys}


def clone(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(doc)


EXAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "shared-note-lbp-annual-control.json": shared_note,
    "diagnosis-card-lbp.json": diagnosis_card,
}


def write_examples(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in EXAMPLES.items():
        (folder / name).write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")



# -- any patient, any clinic -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Patient:
    cpr: str
    given: tuple[str, ...]
    family: str

    @property
    def name(self) -> str:
        return " ".join((*self.given, self.family))

    @property
    def identifier(self) -> str:
        """The ITI-67 `patient.identifier` value."""
        return f"{CPR}|{self.cpr}"


@dataclass(frozen=True)
class Clinic:
    sor: str
    ydernummer: str
    name: str


BENTE = Patient(PATIENT["cpr"], tuple(PATIENT["given"]), PATIENT["family"])
GP_CLINIC = Clinic(CLINIC["sor"], CLINIC["ydernummer"], CLINIC["name"])
OTHER_CLINIC = Clinic("1234561000016008", "067890", "Lægehuset ved Åen")
HOSPITAL_SOR = "7654321000016001"
PHYSIO_SOR = "5551231000016002"
EMERGENCY_SOR = "3334441000016005"


def numbered_patient(n: int, given: str = "Test", family: str = "Patient") -> Patient:
    """Patient number n: a CPR with a valid date (DDMMYY) and a serial number, the same for the same n. The
    serial's first digit is 9, which with years 40-89 is the 1900s by the century rule (born 1940-1989)."""
    day, month, year = 1 + n % 28, 1 + (n // 28) % 12, 40 + (n // 336) % 50
    return Patient(f"{day:02d}{month:02d}{year:02d}{9000 + n % 1000:04d}", (given,), family)


def run_patient(n: int, given: str = "Test", family: str = "Patient") -> Patient:
    """Patient number n of a conformance run: CPR numbers with a valid date (DDMMYY) that stay distinct for the
    first 302 million numbers, so that runs with different seeds rarely meet on a shared test server."""
    i = n % 33600
    day, month, year = 1 + i % 28, 1 + (i // 28) % 12, (i // 336) % 100
    return Patient(f"{day:02d}{month:02d}{year:02d}{1000 + (n // 33600) % 9000:04d}", (given,), family)


def born_patient(n: int, born: dt.date, given: str = "Test", family: str = "Patient") -> Patient:
    """Patient number n of a run, born on `born`: the CPR number names that date by the CPR office's century rule
    (CPR-kontoret, "Personnummeret i CPR-systemet"; validators.identifiers.cpr_birth_date): the seventh digit 0-3
    for a birth in the 1900s, 4 for one in 2000-2036. The last three digits are n's, so that two people of a
    scenario born the same day differ."""
    if 1900 <= born.year <= 1999:
        seventh = (n // 1000) % 4
    elif 2000 <= born.year <= 2036:
        seventh = 4
    else:
        raise ValueError("a run's people are born 1900-2036")
    return Patient(f"{born:%d%m%y}{seventh}{n % 1000:03d}", (given,), family)


def _for(doc: dict[str, Any], patient: Patient, clinic: Clinic) -> dict[str, Any]:
    """Our builders' document, made about another patient and written by another clinic."""
    text = json.dumps(doc, ensure_ascii=False)
    old = PATIENT
    old_name = " ".join([*old["given"], old["family"]])
    text = (text.replace(old["cpr"], patient.cpr).replace(old_name, patient.name)
            .replace(CLINIC["sor"], clinic.sor).replace(CLINIC["name"], clinic.name)
            .replace(f'"{CLINIC["ydernummer"]}"', f'"{clinic.ydernummer}"')
            .replace(f'<td>{CLINIC["ydernummer"]}</td>', f"<td>{clinic.ydernummer}</td>"))
    out = json.loads(text)
    for entry in out["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Patient":
            r["name"][0]["given"], r["name"][0]["family"] = list(patient.given), patient.family
            r["birthDate"] = _birth_date(patient.cpr)
            r["text"]["div"] = r["text"]["div"].replace(old["birthDate"], r["birthDate"])
    return out


def _birth_date(cpr: str) -> str:
    """The birth date the CPR number names (its century by the seventh digit)."""
    born = cpr_birth_date(cpr)
    assert born is not None, "test patients have CPR numbers that name a date"
    return born.isoformat()


def note(patient: Patient = BENTE, clinic: Clinic = GP_CLINIC, *, name: str | None = None,
         note_html: str = NOTE_HTML, created: str = "2026-11-20T09:15:00+01:00",
         updated: str = "2026-11-20T09:40:00+01:00", event_codes: list[tuple[str, str]] | None = None
         ) -> dict[str, Any]:
    """A Shared Note about `patient` by `clinic`; `name` picks its identifiers (a fresh one when not given)."""
    doc = shared_note(note_html, created=created, updated=updated, name=name or f"note-{uuid.uuid4().hex}")
    if event_codes:
        doc["entry"][0]["resource"]["event"][0]["code"] = [
            {"coding": [{"system": s, "code": c}]} for s, c in event_codes]
    return _for(doc, patient, clinic)


# A package note (issue 12): the care package's code and the low back pain diagnosis as the Composition's event
# codes, and PLO's fixed section "Mål og planer" (goals, plan, next control, triage colour) in the note's XHTML.
# The package code is kroniker's own until MedCom publishes one (profiles/packages/lbp/CodeSystem-care-package.json).
PACKAGE_CODE = ("https://kroniker.example/fhir/lbp/CodeSystem/care-package", "lbp")
ICPC2 = "urn:oid:1.2.208.176.2.31"
PACKAGE_NOTE_HTML = (
    "<p>Årskontrol, kroniske lænderygsmerter. Smerter stabile, NRS 4/10 i hvile.</p>"
    "<p><b>Mål og planer</b></p>"
    "<p><b>Mål:</b> Gå 30 minutter fem dage om ugen</p>"
    "<p><b>Plan:</b> Hjemmeøvelser fra fysioterapeut<br/>Kontakt klinikken ved forværring</p>"
    "<p><b>Næste kontrol:</b> 2027-11-20</p>"
    "<p><b>Triagefarve:</b> grøn</p>"
)
# SNOMED CT 33879002 "Administration of vaccine to produce active immunity": the flu shot's event.
VACCINATION_CODE = ("http://snomed.info/sct", "33879002")
FLU_NOTE_HTML = "<p>Influenzavaccination givet i venstre overarm. Ingen reaktion efter 15 minutter.</p>"


def package_note(patient: Patient = BENTE, clinic: Clinic = GP_CLINIC, *, name: str | None = None) -> dict[str, Any]:
    """The annual control's note in the low back pain package (a Shared Note with the package's code)."""
    return note(patient, clinic, name=name, note_html=PACKAGE_NOTE_HTML, event_codes=[PACKAGE_CODE, (ICPC2, "L03")])


def flu_note(patient: Patient = BENTE, clinic: Clinic = GP_CLINIC, *, name: str | None = None) -> dict[str, Any]:
    """A note about a flu vaccination: a Shared Note outside the package."""
    return note(patient, clinic, name=name, note_html=FLU_NOTE_HTML, event_codes=[VACCINATION_CODE])


def card(patient: Patient = BENTE, clinic: Clinic = GP_CLINIC, *, name: str | None = None) -> dict[str, Any]:
    """A diagnosis card (ConditionList) about `patient` by `clinic`, with its own Bundle.identifier."""
    doc = _for(diagnosis_card(), patient, clinic)
    doc["identifier"]["value"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name or uuid.uuid4().hex)}"
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def composition(doc: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Composition")
