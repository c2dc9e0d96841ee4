"""A care package's note as a MedCom Shared Note: built from a small JSON input, and read back to the same fields.

    >>> doc = build_note(data, content)       # a complete Shared Notes document (a Bundle), or NoteError
    >>> fields = read_note(doc, content)      # the input's fields again

The input (`kroniker note build INPUT.json`; docs/clinical.md has it in full):

    {"patient": {"cpr": "1505629996", "given": "Bente", "family": "Lænderyg"},
     "author": {"given": "Jens", "family": "Holm", "authorisation": "0C4QN"},
     "clinic": {"sor": "481751000016007", "name": "Lægerne i Kronikergården", "ydernummer": "054321"},
     "date": "2026-11-20T09:15:00+01:00", "diagnosis": "L03",
     "goals": "…", "plan": "…", "next_control": "2027-11-20", "triage_colour": "green",
     "scores": {"startback.total": 3, "odi.percent": 22.0}, "free_text": "…"}

Nothing here names the low back pain package: the package's note profile (found by `package`, else the one
installed) gives the event code, the section's heading, labels and colours, and the diagnosis value set.
Every id is a UUID v5 of the input, so the same input gives the same document byte for byte.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from kroniker.clinical.content import Content
from kroniker.validators.identifiers import cpr_birth_date
from kroniker.validators.note_section import is_date, looks_like_number, read_section, write_section
from kroniker.validators.package_notes import SECTION_EXT

NOTES = "http://medcomfhir.dk/ig/notes/StructureDefinition"
DOCUMENT = "http://medcomfhir.dk/ig/document/StructureDefinition"
VALUE_ATTACHMENT = "http://medcomfhir.dk/ig/core/StructureDefinition/medcom-observation-value-attachment-extension"
CPR = "urn:oid:1.2.208.176.1.2"
SOR = "urn:oid:1.2.208.176.1.1"
YDER = "urn:oid:1.2.208.176.1.4"
AUTHORISATION = "https://autregweb.sst.dk"
ENCOUNTER_NOTE = {"system": "http://snomed.info/sct", "code": "866144008", "display": "Encounter note"}
CLASS_CODE = {"system": "http://medcomfhir.dk/ig/xdsmetadata/CodeSystem/MedCom-ihe-classcode-CS", "code": "001",
              "display": "Klinisk rapport"}
ROLE = {"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-core-PractitionerRolesSKSadministrativ",
        "code": "speciallaegeipraksis"}
ICPC2, SKS = "urn:oid:1.2.208.176.2.31", "urn:oid:1.2.208.176.2.4.12"
BASE = "https://kroniker.example/fhir"
_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://kroniker.example/fhir/note")
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
TEXT_FIELDS = (("patient", "given"), ("patient", "family"), ("author", "given"), ("author", "family"),
               ("clinic", "name"))
MAX_TEXT = 100_000


class NoteError(Exception):
    """Input that cannot become (or a document that is not) a package note; `key` and `params` for messages."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


@dataclass(frozen=True)
class NoteProfile:
    """A package's note profile: its url, the event coding that claims it, the section definition."""

    url: str
    package: str
    coding: dict[str, str]
    section: dict[str, Any]


def note_profiles(content: Content) -> list[NoteProfile]:
    """Every installed package's note profile (a Composition profile carrying a `note-section`)."""
    content._entries()
    out = []
    for url in sorted(content._types.get("StructureDefinition", ())):
        found = content.find(url)
        sd = found.resource if found else None
        if not sd or sd.get("type") != "Composition":
            continue
        coding = next(({"system": c["system"], "code": c["code"]}
                       for e in (sd.get("differential") or {}).get("element") or []
                       if e.get("path") == "Composition.event.code" and e.get("patternCodeableConcept")
                       for c in e["patternCodeableConcept"].get("coding") or []), None)
        section = _section(sd, content)
        if coding and section and found is not None:
            out.append(NoteProfile(url, found.package.name, coding, section))
    return out


def _section(sd: dict[str, Any], content: Content) -> dict[str, Any] | None:
    for ext in sd.get("extension") or []:
        att = ext.get("valueAttachment") if ext.get("url") == SECTION_EXT else None
        if isinstance(att, dict) and isinstance(att.get("data"), str):
            try:
                section = json.loads(base64.b64decode(att["data"]))
            except ValueError:
                return None
            vs = content.find(section["diagnosis"]) if isinstance(section.get("diagnosis"), str) else None
            section["diagnosis_codes"] = [(inc.get("system"), c.get("code"))
                                          for inc in ((vs.resource if vs else {}).get("compose") or {}).get(
                                              "include") or [] for c in inc.get("concept") or []]
            return dict(section)
    return None


def _profile(content: Content, package: str | None) -> NoteProfile:
    profiles = note_profiles(content)
    chosen = [p for p in profiles if package in (None, p.package, p.url)]
    if len(chosen) != 1:
        raise NoteError("note-profile-missing" if not chosen else "note-profile-choose",
                        package=package or "", found=", ".join(p.package for p in profiles) or "-")
    return chosen[0]


# -- the input -----------------------------------------------------------------------------------------------

def normalise(data: Any, profile: NoteProfile) -> dict[str, Any]:
    """The input checked and normalised (texts stripped, line ends as \\n); NoteError says what is wrong."""
    if not isinstance(data, dict):
        raise NoteError("note-input-object")
    out: dict[str, Any] = {}
    for part, keys in (("patient", ("cpr", "given", "family")), ("author", ("given", "family", "authorisation")),
                       ("clinic", ("sor", "name", "ydernummer"))):
        obj = data.get(part)
        if not isinstance(obj, dict):
            raise NoteError("note-input-missing", field=part)
        out[part] = {k: _text(obj.get(k), f"{part}.{k}", required=True, one_line=True) for k in keys}
    _pattern(out["patient"]["cpr"], r"\d{10}", "patient.cpr")
    if cpr_birth(out["patient"]["cpr"]) is None:
        raise NoteError("note-input-format", field="patient.cpr", expected="DDMMYY-SSSS", found=out["patient"]["cpr"])
    _pattern(out["clinic"]["sor"], r"\d{11,18}", "clinic.sor")
    _pattern(out["clinic"]["ydernummer"], r"\d{1,10}", "clinic.ydernummer")
    _pattern(out["author"]["authorisation"], r"[A-Za-z0-9]{1,10}", "author.authorisation")
    date = data.get("date")
    if not isinstance(date, str) or not _DATETIME.fullmatch(date) or not _valid_datetime(date):
        raise NoteError("note-input-format", field="date", expected="YYYY-MM-DDThh:mm:ss+hh:mm", found=date)
    out["date"] = date
    diagnosis = data.get("diagnosis")
    codes = {code for _, code in profile.section.get("diagnosis_codes") or []}
    if diagnosis not in codes:
        raise NoteError("note-input-format", field="diagnosis", expected=", ".join(sorted(codes)), found=diagnosis)
    out["diagnosis"] = diagnosis
    for fdef in profile.section.get("fields") or []:
        key = fdef["key"]
        value = _text(data.get(key), key, required=bool(fdef.get("required")), one_line=fdef.get("kind") != "text")
        if fdef.get("kind") == "date" and value and not is_date(value):
            raise NoteError("note-input-format", field=key, expected="YYYY-MM-DD", found=value)
        if fdef.get("kind") == "code" and value and value not in (fdef.get("values") or {}):
            raise NoteError("note-input-format", field=key, expected=", ".join(fdef.get("values") or {}), found=value)
        out[key] = value
    scores = data.get("scores", {})
    if not isinstance(scores, dict):
        raise NoteError("note-input-format", field="scores", expected="{\"id\": value}", found=scores)
    out["scores"] = {}
    for sid, value in scores.items():
        sid = _text(sid, "scores", required=True, one_line=True)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or \
                (isinstance(value, float) and not math.isfinite(value)):
            raise NoteError("note-input-format", field=f"scores.{sid}", expected="number | text", found=value)
        if isinstance(value, str):
            value = _text(value, f"scores.{sid}", required=True, one_line=True)
            if looks_like_number(value):
                raise NoteError("note-input-format", field=f"scores.{sid}", expected="a number as a JSON number",
                                found=value)
        out["scores"][sid] = value
    out["free_text"] = _text(data.get("free_text", ""), "free_text", required=False, one_line=False)
    return out


def _text(value: Any, name: str, *, required: bool, one_line: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise NoteError("note-input-missing" if value is None else "note-input-text", field=name)
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if required and not value:
        raise NoteError("note-input-missing", field=name)
    if _BAD_CHARS.search(value) or (one_line and "\n" in value):
        raise NoteError("note-input-chars", field=name)
    if len(value) > MAX_TEXT:
        raise NoteError("note-input-long", field=name, max=MAX_TEXT)
    return value


def cpr_birth(cpr: str) -> tuple[str, str] | None:
    """Birth date and administrative gender from a CPR number (the CPR office's century rule, in
    validators.identifiers.cpr_birth_date; the last digit is odd for men, even for women); None when the digits
    are not a date."""
    born = cpr_birth_date(cpr)
    if born is None:
        return None
    return born.isoformat(), "male" if int(cpr[9]) % 2 else "female"


def _pattern(value: str, pattern: str, name: str) -> None:
    if not re.fullmatch(pattern, value):
        raise NoteError("note-input-format", field=name, expected=pattern, found=value)


def _valid_datetime(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# -- building ------------------------------------------------------------------------------------------------

def build_note(data: Any, content: Content, package: str | None = None) -> dict[str, Any]:
    """A complete MedCom Shared Note document for a package note (the same input gives the same document)."""
    profile = _profile(content, package)
    note = normalise(data, profile)
    seed = json.dumps(note, ensure_ascii=False, sort_keys=True)

    def nid(role: str) -> str:
        return str(uuid.uuid5(_NS, f"{role}\n{seed}"))

    p, a, c = note["patient"], note["author"], note["clinic"]
    ids = {k: nid(k) for k in ("patient", "clinic", "gp", "role", "observation", "composition", "bundle")}
    html = write_section({f["key"]: note[f["key"]] for f in profile.section.get("fields") or []}, profile.section,
                         note["free_text"], note["scores"])
    ref = {k: f"{t}/{ids[k]}" for k, t in (("patient", "Patient"), ("clinic", "Organization"), ("gp", "Practitioner"),
                                          ("role", "PractitionerRole"), ("observation", "Observation"))}
    patient = {"resourceType": "Patient", "id": ids["patient"],
               "meta": {"profile": [f"{DOCUMENT}/medcom-document-patient"]},
               "identifier": [{"system": CPR, "value": p["cpr"]}],
               "name": [{"use": "official", "family": p["family"], "given": [p["given"]]}]}
    born, gender = cpr_birth(p["cpr"]) or ("", "")
    patient.update({"gender": gender, "birthDate": born})
    _narrate(patient, [("CPR", p["cpr"]), ("Navn", f"{p['given']} {p['family']}"), ("Køn", gender),
                       ("Fødselsdato", born)])
    org = {"resourceType": "Organization", "id": ids["clinic"],
           "meta": {"profile": [f"{DOCUMENT}/medcom-document-organization"]},
           "identifier": [{"system": SOR, "value": c["sor"]}, {"system": YDER, "value": c["ydernummer"]}],
           "name": c["name"]}
    _narrate(org, [("SOR", c["sor"]), ("Ydernummer", c["ydernummer"]), ("Navn", c["name"])])
    gp = {"resourceType": "Practitioner", "id": ids["gp"],
          "meta": {"profile": [f"{DOCUMENT}/medcom-document-practitioner"]},
          "identifier": [{"system": AUTHORISATION, "value": a["authorisation"]}],
          "name": [{"family": a["family"], "given": [a["given"]]}]}
    _narrate(gp, [("Autorisations-id", a["authorisation"]), ("Navn", f"{a['given']} {a['family']}")])
    role = {"resourceType": "PractitionerRole", "id": ids["role"],
            "meta": {"profile": [f"{DOCUMENT}/medcom-document-practitionerrole"]},
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{nid('role-identifier')}"}],
            "practitioner": {"reference": ref["gp"]}, "organization": {"reference": ref["clinic"]},
            "code": [{"coding": [ROLE]}]}
    _narrate(role, [("Behandler", ref["gp"]), ("Organisation", ref["clinic"]), ("Rolle", ROLE["code"])])
    obs = {"resourceType": "Observation", "id": ids["observation"],
           "meta": {"profile": [f"{NOTES}/medcom-notes-observation"]},
           "extension": [{"url": VALUE_ATTACHMENT, "valueAttachment": {
               "contentType": "text/html", "data": base64.b64encode(html.encode("utf-8")).decode("ascii")}}],
           "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{nid('note-identifier')}"}],
           "status": "final", "code": {"coding": [ENCOUNTER_NOTE]}, "subject": {"reference": ref["patient"]},
           "effectiveDateTime": note["date"],
           "performer": [{"reference": ref["clinic"]}, {"reference": ref["role"]}, {"reference": ref["gp"]}]}
    _narrate(obs, [("Status", "final"), ("Kode", "866144008 Encounter note"), ("Patient", ref["patient"]),
                   ("Oprettet", note["date"]), ("Indholdstype", "text/html")], status="extensions")
    system = ICPC2 if note["diagnosis"][:1] != "D" else SKS
    comp = {"resourceType": "Composition", "id": ids["composition"],
            "meta": {"profile": [f"{NOTES}/medcom-notes-composition|1.0"]}, "language": "da",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{nid('document')}"},
            "status": "final", "type": {"coding": [ENCOUNTER_NOTE]}, "category": [{"coding": [CLASS_CODE]}],
            "subject": {"reference": ref["patient"]}, "date": note["date"],
            "author": [{"reference": ref["clinic"]}, {"reference": ref["gp"]}],
            "title": f"Journalnotat for {p['cpr']}", "confidentiality": "N",
            "event": [{"code": [{"coding": [profile.coding]},
                                {"coding": [{"system": system, "code": note["diagnosis"]}]}],
                       "period": {"start": note["date"]}}],
            "section": [{"entry": [{"reference": ref["observation"]}]}]}
    _narrate(comp, [("Titel", comp["title"]), ("Type", "866144008 Encounter note"), ("Patient", ref["patient"]),
                    ("Dato", note["date"]), ("Forfatter", f"{ref['clinic']}, {ref['gp']}"),
                    ("Pakkeforløb", f"{profile.coding['system']}#{profile.coding['code']}"),
                    ("Diagnose", f"{system} {note['diagnosis']}"), ("Notat", ref["observation"]),
                    ("Profil", comp["meta"]["profile"][0])])
    return {"resourceType": "Bundle", "id": ids["bundle"], "meta": {"profile": [f"{NOTES}/medcom-notes-bundle"]},
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{nid('bundle-identifier')}"},
            "type": "document", "timestamp": note["date"],
            "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r}
                      for r in (comp, obs, patient, org, gp, role)]}


def _narrate(resource: dict[str, Any], rows: list[tuple[str, str]], status: str = "generated") -> None:
    div = etree.Element("div", nsmap={None: "http://www.w3.org/1999/xhtml"})
    title = etree.SubElement(etree.SubElement(div, "p"), "b")
    title.text = f"{resource['resourceType']} {resource['id']}"
    table = etree.SubElement(div, "table")
    for k, v in rows:
        tr = etree.SubElement(table, "tr")
        etree.SubElement(tr, "th").text = k
        etree.SubElement(tr, "td").text = v
    resource["text"] = {"status": status, "div": etree.tostring(div, encoding="unicode")}


# -- reading -------------------------------------------------------------------------------------------------

def read_note(doc: Any, content: Content) -> dict[str, Any]:
    """The fields of a package note (as `build_note` takes them); NoteError when it is not one (a document of
    the wrong shape included: never a traceback)."""
    try:
        return _read_note(doc, content)
    except (AttributeError, KeyError, TypeError, IndexError, ValueError):
        raise NoteError("note-not-document") from None


def _read_note(doc: Any, content: Content) -> dict[str, Any]:
    entries = doc.get("entry") if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" else None
    if not isinstance(entries, list):
        raise NoteError("note-not-document")
    by_ref: dict[str, dict[str, Any]] = {}
    for e in entries:
        r = e.get("resource") if isinstance(e, dict) else None
        if isinstance(r, dict) and isinstance(r.get("id"), str):
            by_ref[f"{r.get('resourceType')}/{r['id']}"] = r
            if isinstance(e.get("fullUrl"), str):
                by_ref[e["fullUrl"]] = r
    comp = next((r for r in by_ref.values() if r.get("resourceType") == "Composition"), None)
    if comp is None:
        raise NoteError("note-not-document")
    codings = [c for ev in comp.get("event") or [] for cc in ev.get("code") or [] for c in cc.get("coding") or []]
    profile = next((p for p in note_profiles(content) if any(
        c.get("system") == p.coding["system"] and c.get("code") == p.coding["code"] for c in codings)), None)
    if profile is None:
        raise NoteError("note-no-package")

    def get(ref: Any) -> dict[str, Any]:
        key = ref.get("reference") if isinstance(ref, dict) else None
        return by_ref.get(key, {}) if isinstance(key, str) else {}

    patient = get(comp.get("subject"))
    authors = [get(a) for a in comp.get("author") or []]
    gp = next((a for a in authors if a.get("resourceType") == "Practitioner"), {})
    org = next((a for a in authors if a.get("resourceType") == "Organization"), {})
    obs = get((comp.get("section") or [{}])[0].get("entry", [{}])[0])
    html = ""
    for ext in obs.get("extension") or []:
        if ext.get("url") == VALUE_ATTACHMENT:
            html = base64.b64decode(ext["valueAttachment"]["data"]).decode("utf-8")
    read = read_section(html, profile.section)
    if read.problems:
        _code, key, params = read.problems[0]
        raise NoteError(key, heading=profile.section.get("heading"), package=profile.package, **params)
    wanted = {code for _, code in profile.section.get("diagnosis_codes") or []}
    out: dict[str, Any] = {
        "patient": {"cpr": _ident(patient, CPR), "given": _given(patient), "family": _family(patient)},
        "author": {"given": _given(gp), "family": _family(gp), "authorisation": _ident(gp, AUTHORISATION)},
        "clinic": {"sor": _ident(org, SOR), "name": org.get("name"), "ydernummer": _ident(org, YDER)},
        "date": ((comp.get("event") or [{}])[0].get("period") or {}).get("start") or comp.get("date"),
        "diagnosis": next((c.get("code") for c in codings if c.get("code") in wanted), None),
    }
    out.update(read.values)
    out["scores"] = read.scores
    out["free_text"] = read.free_text
    return out


def _ident(r: dict[str, Any], system: str) -> str | None:
    return next((i.get("value") for i in r.get("identifier") or [] if i.get("system") == system), None)


def _given(r: dict[str, Any]) -> str | None:
    names = r.get("name") or [{}]
    return " ".join(names[0].get("given") or []) or None


def _family(r: dict[str, Any]) -> str | None:
    return (r.get("name") or [{}])[0].get("family")
