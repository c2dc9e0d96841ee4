"""Steps for features/lps, features/kliniker and features/borger: a GP system, clinicians and a citizen meet the
sharing system under test over its MHD endpoints. Every request asks for Danish answers. The same steps run the
project's tests (tests/test_features_server.py) and a vendor's conformance run."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from kroniker.conformance.documents import (
    CPR,
    EMERGENCY_SOR,
    GP_CLINIC,
    HOSPITAL_SOR,
    NOTE_HTML,
    OTHER_CLINIC,
    PACKAGE_CODE,
    PHYSIO_SOR,
    Clinic,
    Patient,
    born_patient,
    card,
    composition,
    encode,
    flu_note,
    note,
    package_note,
    run_patient,
)
from kroniker.conformance.steps import Context, Registry, check
from kroniker.reference_server.tokens import Principal
from kroniker.validators.fhir_xml import to_xml
from kroniker.validators.identifiers import cpr_birth_date

steps = Registry()

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
ADMIN = Principal("admin", name="drift")
ORGANISATIONS = {
    GP_CLINIC.name: GP_CLINIC.sor,
    OTHER_CLINIC.name: OTHER_CLINIC.sor,
    "Rygcentret": HOSPITAL_SOR,
    "Fysioterapien Midtby": PHYSIO_SOR,
    "skadestuen": EMERGENCY_SOR,
}
CLINICS = {GP_CLINIC.name: GP_CLINIC, OTHER_CLINIC.name: OTHER_CLINIC}
# name → (authorisation id, organisation)
CLINICIANS = {
    "Jens Holm": ("JH7001", GP_CLINIC.name),
    "Sofie Krag": ("SK7002", "Rygcentret"),
    "Søren Bak": ("SB7003", "skadestuen"),
    "Mette Lund": ("ML7004", "Fysioterapien Midtby"),
}
NAMES = "|".join(CLINICIANS)
ORGS = "|".join(re.escape(o) for o in ORGANISATIONS)
DOCS = r"(?:notatet|det|diagnosekortet)\b.*"
MONTHS = {m: i for i, m in enumerate(["januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
                                      "september", "oktober", "november", "december"], start=1)}
ALIASES = {"det gamle notat": "notatet fra årskontrollen", "det oprindelige notat": "notatet fra årskontrollen",
           "notatet": "notatet fra årskontrollen"}
REASONS = {"med hendes samtykke": "consent", "fordi det er livsvigtigt": "vital-interest",
           "fordi hun ikke kan kontaktes": "not-contactable", "af nysgerrighed": "nysgerrighed"}
ALL_STATUSES = "current,superseded"
STORED = ("documents", "document_events")


# -- callers ---------------------------------------------------------------------------------------------

def source(clinic: Clinic = GP_CLINIC) -> Principal:
    return Principal("source", sor=clinic.sor, ydernummer=clinic.ydernummer, org_name=clinic.name)


def citizen(patient: Patient) -> Principal:
    return Principal("citizen", cpr=patient.cpr, name=patient.name)


def clinician(name: str) -> Principal:
    auth_id, org = CLINICIANS[name]
    return Principal("clinician", auth_id=auth_id, sor=ORGANISATIONS[org], name=name, org_name=org)


def days_from_now(days: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- answers ---------------------------------------------------------------------------------------------

def expect_status(response: httpx.Response | None, status: int) -> None:
    """The answer's HTTP status is `status`."""
    check(response is not None, "check-no-answer")
    assert response is not None
    check(response.status_code == status, "check-status", expected=status, found=response.status_code,
          body=response.text)


def entries(bundle: dict[str, Any], resource_type: str = "DocumentReference") -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == resource_type]


def finding_codes(outcome: dict[str, Any]) -> set[str]:
    check(outcome.get("resourceType") == "OperationOutcome", "check-outcome-body", body=json.dumps(outcome)[:500])
    return {c["code"] for i in outcome["issue"] for c in i.get("details", {}).get("coding", [])}


def is_outcome(r: httpx.Response) -> bool:
    """An OperationOutcome with at least one issue, served as FHIR JSON, and no trace of Python."""
    try:
        body = r.json()
    except ValueError:
        return False
    return (r.headers.get("content-type", "").startswith(FHIR_JSON) and isinstance(body, dict)
            and body.get("resourceType") == "OperationOutcome" and bool(body.get("issue"))
            and "Traceback" not in r.text and 'File "' not in r.text)


def diagnostics(response: httpx.Response | None) -> str:
    check(response is not None, "check-no-answer")
    assert response is not None
    check(is_outcome(response), "check-outcome", found=response.status_code, body=response.text)
    return " ".join(i.get("diagnostics", "") for i in response.json()["issue"])


def shown(response: httpx.Response) -> set[str]:
    expect_status(response, 200)
    return {d["id"] for d in entries(response.json())}


def patient_of(docref: dict[str, Any]) -> str | None:
    """The CPR a DocumentReference is about (sourcePatientInfo, or the contained Patient its subject names)."""
    info = (docref.get("context") or {}).get("sourcePatientInfo") or {}
    if (info.get("identifier") or {}).get("system") == CPR:
        return str(info["identifier"].get("value"))
    ref = (docref.get("subject") or {}).get("reference", "")
    for r in docref.get("contained", []):
        if ref == f"#{r.get('id')}" and r.get("resourceType") == "Patient":
            for i in r.get("identifier", []):
                if i.get("system") == CPR:
                    return str(i.get("value"))
    return None


def only_the_patients_documents(method: str, path: str, params: dict[str, str], r: httpx.Response
                                ) -> list[tuple[str, str]]:
    """Invariant: a search for a patient answers with that patient's documents only (DEL-SOEG-KUN-PATIENTEN)."""
    if method != "GET" or path != "/fhir/DocumentReference" or r.status_code != 200:
        return []
    asked = params.get("patient.identifier", "").rpartition("|")[2]
    try:
        bundle = r.json()
    except ValueError:
        return []
    others = sorted({str(p) for p in map(patient_of, entries(bundle)) if p is not None and p != asked})
    if others:
        return [("DEL-SOEG-KUN-PATIENTEN", f"a search for patient {asked} answered with documents about "
                                           f"{', '.join(others)}")]
    return []


INVARIANTS = [only_the_patients_documents]


# -- the world -------------------------------------------------------------------------------------------------

@dataclass
class World:
    """What the scenario has set up and what the last answers were."""

    ctx: Context
    patients: dict[str, Patient] = field(default_factory=dict)  # by first name and by full name
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # DocumentReferences by how the feature names them
    bodies: dict[str, bytes] = field(default_factory=dict)  # what was sent, by the same names
    draft: dict[str, Any] | None = None  # what the GP system is about to share
    draft_kind: str = "notatet"
    draft_author: Clinic = GP_CLINIC
    sent: tuple[bytes, str] | None = None
    found: dict[str, httpx.Response] = field(default_factory=dict)  # each person's last look-up
    last: httpx.Response | None = None
    last_looker: str = ""
    rows_before: dict[str, int] | None = None
    blocks: list[str] = field(default_factory=list)
    unshared: dict[str, dict[str, Any]] = field(default_factory=dict)  # written, not shared yet, by name
    proxies: dict[str, str] = field(default_factory=dict)  # proxy ids by the subject's CPR

    # -- numbering: the same numbers in a rerun of the same session -------------------------------------------
    def new_patient(self, given: str, family: str) -> Patient:
        return run_patient(self.ctx.serial(), given, family)

    def name(self, what: str) -> str:
        return f"{what}-{self.ctx.serial()}"

    # -- requests -------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, principal: Principal | None, **kwargs: Any) -> httpx.Response:
        return self.ctx.http.request(method, path, principal, **kwargs)

    def get(self, url: str, principal: Principal | None, **headers: str) -> httpx.Response:
        return self.request("GET", _path(url), principal, headers={"Accept-Language": "da", **headers})

    def search(self, principal: Principal, patient: Patient, status: str = "current", **headers: str
               ) -> httpx.Response:
        return self.request("GET", "/fhir/DocumentReference", principal,
                            params={"patient.identifier": patient.identifier, "status": status},
                            headers={"Accept-Language": "da", **headers})

    def submit(self, principal: Principal, body: bytes, content_type: str = FHIR_JSON,
               replaces: str | None = None) -> httpx.Response:
        self.rows_before = self.rows()
        self.last = self.request("POST", "/fhir/Bundle", principal, content=body,
                                 params={"replaces": replaces} if replaces else None,
                                 headers={"Content-Type": content_type, "Accept-Language": "da"})
        return self.last

    def shared(self, principal: Principal, doc: dict[str, Any]) -> dict[str, Any]:
        r = self.submit(principal, encode(doc))
        expect_status(r, 201)
        return dict(r.json())

    def relate(self, patient: Patient, *, clinician_id: str | None = None, organisation: str | None = None,
               evidence: str = "referral", start: str | None = None, end: str | None = None) -> None:
        body = {"patient": patient.cpr, "clinician": clinician_id, "organisation": organisation,
                "evidence": evidence, "start": start, "end": end}
        r = self.request("POST", "/admin/relations", ADMIN, json_body={k: v for k, v in body.items() if v})
        expect_status(r, 201)

    def block(self, principal: Principal, **body: Any) -> httpx.Response:
        return self.request("POST", "/blocks", principal, json_body=body)

    def minlog(self) -> list[dict[str, Any]]:
        r = self.request("GET", "/fhir/AuditEvent", citizen(self.bente), params={"_count": "1000"})
        expect_status(r, 200)
        return [e["resource"] for e in r.json().get("entry", [])]

    def rows(self) -> dict[str, int] | None:
        """Row counts where the target lets us look into its database (our own server); otherwise None."""
        target = self.ctx.target
        return self.ctx.observe("rows", lambda: target.rows() if target is not None else None)

    # -- names in the feature ---------------------------------------------------------------------------------
    def patient(self, name: str) -> Patient:
        return self.patients[name.removesuffix("s") if name not in self.patients else name]

    def doc(self, label: str) -> dict[str, Any]:
        return self.docs[ALIASES.get(label, label)]

    def labels(self, text: str) -> set[str]:
        return {ALIASES.get(x.strip(), x.strip()) for x in re.split(r",\s*| og ", text) if x.strip()}

    def ids(self, text: str) -> set[str]:
        return {self.docs[label]["id"] for label in self.labels(text)}

    @property
    def bente(self) -> Patient:
        return self.patients["Bente"]


def _path(url: str) -> str:
    """A retrieve URL of the target's as a path on it (the target names its own base)."""
    u = httpx.URL(url)
    return u.raw_path.decode("ascii") if u.is_absolute_url else url


def looked_up(world: World, name: str, response: httpx.Response) -> None:
    world.found[name] = world.last = response
    world.last_looker = name


def content_url(doc: dict[str, Any]) -> str:
    return str(doc["content"][0]["attachment"]["url"])


# -- Givet: people, documents, relations, blocks ------------------------------------------------------------

@steps.given(r"at (?P<name>\w+ \w+) er patient hos (?P<clinic>[^,]+)")
def patient_at(world: World, name: str, clinic: str) -> None:
    assert clinic in CLINICS, clinic
    given_name, family = name.split(" ")
    world.patients[name] = world.patients[given_name] = world.new_patient(given_name, family)


@steps.given(r"at (?P<name>\w+ \w+) også er patient hos (?P<clinic>.+) og har fået delt et notat")
def another_patient_with_a_note(world: World, name: str, clinic: str) -> None:
    patient_at(world, name, clinic)
    world.docs[f"{name}s notat"] = world.shared(source(CLINICS[clinic]),
                                                 note(world.patient(name), CLINICS[clinic], name=world.name("note")))


@steps.given("at lægen har skrevet et notat fra årskontrollen")
def note_written(world: World) -> None:
    world.draft, world.draft_kind = note(world.bente, name=f"arskontrol-{world.bente.cpr}"), "notatet"


@steps.given("at lægen har registreret lændesmerter på Bentes diagnosekort")
def card_written(world: World) -> None:
    world.draft, world.draft_kind = card(world.bente, name=world.name("card")), "diagnosekortet"


@steps.given(r"at (?P<clinic>.+) har skrevet et notat om (?P<first>\w+)")
def note_by_another_clinic(world: World, clinic: str, first: str) -> None:
    world.draft = note(world.patient(first), CLINICS[clinic], name=world.name("note"))
    world.draft_author = CLINICS[clinic]


@steps.given("at lægen har skrevet et notat fra årskontrollen med mål og planer")
def package_note_written(world: World) -> None:
    world.unshared["notatet fra årskontrollen"] = package_note(world.bente, name=world.name("package-note"))


@steps.given(r"at lægen også har skrevet et notat, da (?P<first>\w+) fik sin influenzavaccination")
def flu_note_written(world: World, first: str) -> None:
    world.unshared["notatet om influenzavaccinationen"] = flu_note(world.patient(first), name=world.name("flu-note"))


@steps.given(r'at lægesystemet kun skriver "(?P<title>[^"]+)" som titel')
def title_without_cpr(world: World, title: str) -> None:
    assert world.draft is not None
    composition(world.draft)["title"] = title


@steps.given("at lægesystemet har delt et notat fra årskontrollen")
def note_shared(world: World) -> None:
    note_written(world)
    shares_note(world, "notatet")
    expect_status(world.last, 201)
    assert world.last is not None


@steps.given("at hendes læge har delt et notat fra årskontrollen og hendes diagnosekort")
def gp_shared_note_and_card(world: World) -> None:
    note_shared(world)
    card_written(world)
    shares_note(world, "diagnosekortet")
    expect_status(world.last, 201)
    assert world.last is not None


@steps.given(r"at hendes tidligere læge, (?P<clinic>.+), har delt et notat fra foråret 2025")
def former_gp_shared(world: World, clinic: str) -> None:
    doc = note(world.bente, CLINICS[clinic], created="2025-05-02T10:00:00+02:00", updated="2025-05-02T10:20:00+02:00",
               name=world.name("note"))
    world.docs["notatet fra foråret 2025"] = world.shared(source(CLINICS[clinic]), doc)


@steps.given(r"at (?:lægen|Bentes læge) har rettet notatet(?: én gang| fra årskontrollen)")
def note_corrected(world: World) -> None:
    corrects_note(world)
    expect_status(world.last, 201)
    assert world.last is not None


@steps.given(rf"at (?:\w+ )?(?P<name>{NAMES}) på (?P<org>{ORGS}) har fået en henvisning på (?P<first>\w+)")
def referral(world: World, name: str, org: str, first: str) -> None:
    assert CLINICIANS[name][1] == org
    world.relate(world.patient(first), clinician_id=CLINICIANS[name][0], evidence="referral")


@steps.given(rf"at (?:\w+ )?(?P<name>{NAMES}) på (?P<org>{ORGS}) havde en henvisning på (?P<first>\w+), "
             r"som udløb i sidste måned")
def expired_referral(world: World, name: str, org: str, first: str) -> None:
    assert CLINICIANS[name][1] == org
    world.relate(world.patient(first), clinician_id=CLINICIANS[name][0], evidence="referral",
                 start=days_from_now(-90), end=days_from_now(-20))


@steps.given(rf"at (?P<org>{ORGS}) har fået en henvisning på (?P<first>\w+)")
def referral_to_organisation(world: World, org: str, first: str) -> None:
    world.relate(world.patient(first), organisation=ORGANISATIONS[org], evidence="referral")


@steps.given(rf"at hendes egen læge, (?P<name>{NAMES}), er tilknyttet hende som praktiserende læge")
def own_gp(world: World, name: str) -> None:
    assert CLINICIANS[name][1] == GP_CLINIC.name
    world.relate(world.bente, clinician_id=CLINICIANS[name][0], evidence="assigned-gp")


def _block(world: World, first: str, **body: str) -> None:
    r = world.block(citizen(world.patient(first)), **body)
    expect_status(r, 201)
    world.blocks.append(r.json()["id"])


@steps.given(r"at (?P<first>\w+) har spærret for alle sundhedspersoner")
def general_block(world: World, first: str) -> None:
    _block(world, first, kind="general")


@steps.given(rf"at (?P<first>\w+) har spærret for (?P<name>{NAMES})")
def professional_block(world: World, first: str, name: str) -> None:
    _block(world, first, kind="professional", clinician=CLINICIANS[name][0])


@steps.given(rf"at (?P<first>\w+) har spærret for notater fra (?P<org>{ORGS})")
def organisation_block(world: World, first: str, org: str) -> None:
    _block(world, first, kind="organisation", organisation=ORGANISATIONS[org])


@steps.given(r"at (?P<first>\w+) har spærret for notater fra (?P<d1>\d+)\. (?P<m1>\w+) til (?P<d2>\d+)\. "
             r"(?P<m2>\w+) (?P<year>\d{4})")
def period_block(world: World, first: str, d1: str, m1: str, d2: str, m2: str, year: str) -> None:
    start = f"{year}-{MONTHS[m1]:02d}-{int(d1):02d}"
    # "til 30. juni" includes the 30th, and so does the server's end date (a Danish day, end included).
    end = f"{year}-{MONTHS[m2]:02d}-{int(d2):02d}"
    _block(world, first, kind="period", start=start, end=end)


@steps.given(rf"at (?:\w+ )?(?P<name>{NAMES}) derfor ingen notater ser om (?P<first>\w+)")
def sees_nothing_yet(world: World, name: str, first: str) -> None:
    r = world.search(clinician(name), world.patient(first))
    check(r.status_code == 200 and r.json()["total"] == 0, "check-empty", body=r.text)


# -- Når: the GP system ------------------------------------------------------------------------------------------

@steps.when(r"lægesystemet deler (?P<what>notatet|diagnosekortet)(?: som (?P<fmt>JSON|XML))?")
def shares_note(world: World, what: str, fmt: str | None = None) -> None:
    assert world.draft is not None
    body, content_type = (to_xml(world.draft).encode(), FHIR_XML) if fmt == "XML" else (encode(world.draft), FHIR_JSON)
    world.sent = (body, content_type)
    r = world.submit(source(world.draft_author), body, content_type)
    label = "notatet fra årskontrollen" if what == "notatet" else "diagnosekortet"
    if r.status_code == 201:
        world.docs[label], world.bodies[label] = r.json(), body


@steps.when("lægen retter en fejl i notatet, og lægesystemet deler rettelsen i stedet for det gamle notat")
def corrects_note(world: World) -> None:
    old = world.doc("notatet fra årskontrollen")
    fixed = note(world.bente, name=f"rettet-{world.bente.cpr}", updated="2026-11-20T11:05:00+01:00",
                 note_html=NOTE_HTML.replace("NRS 4/10", "NRS 3/10"))
    body = encode(fixed)
    r = world.submit(source(), body, replaces=old["id"])
    if r.status_code == 201:
        world.docs["det rettede notat"], world.bodies["det rettede notat"] = r.json(), body


@steps.when("lægesystemet igen forsøger at erstatte det oprindelige notat")
def replaces_the_original_again(world: World) -> None:
    again = note(world.bente, name=f"rettet-igen-{world.bente.cpr}", updated="2026-11-20T12:00:00+01:00")
    world.submit(source(), encode(again), replaces=world.doc("det oprindelige notat")["id"])


@steps.when("forbindelsen svigter, og lægesystemet sender det samme notat igen")
def sends_again(world: World) -> None:
    world.submit(source(), world.bodies["notatet fra årskontrollen"])


@steps.when(r"lægesystemet hos (?P<clinic>.+) forsøger at dele notatet")
def clinic_shares_anothers_note(world: World, clinic: str) -> None:
    assert world.draft is not None
    world.submit(source(CLINICS[clinic]), encode(world.draft))


@steps.when("supporten markerer notatet som fejlregistreret, fordi det hørte til en anden patient")
def withdrawn(world: World) -> None:
    doc = world.doc("notatet")
    r = world.request("PATCH", f"/fhir/DocumentReference/{doc['id']}", ADMIN,
                      json_body={"status": "entered-in-error", "reason": "hørte til en anden patient"})
    expect_status(r, 200)


# -- Når: citizens and clinicians ------------------------------------------------------------------------------

@steps.when("begge notater er delt")
def both_notes_shared(world: World) -> None:
    assert len(world.unshared) == 2, sorted(world.unshared)
    for label, doc in world.unshared.items():
        world.docs[label] = world.shared(source(), doc)
    world.unshared.clear()


@steps.when(r"(?P<first>\w+) åbner sine journalnotater")
def citizen_opens(world: World, first: str) -> None:
    looked_up(world, first, world.search(citizen(world.patient(first)), world.patient(first)))


@steps.when(rf"(?:\w+ )?(?P<name>{NAMES})(?: (?:på|fra) (?:{ORGS}))? slår (?P<patient>\w+(?: \w+)?) op")
def clinician_looks_up(world: World, name: str, patient: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.patient(patient)))


@steps.when(rf"(?:\w+ )?(?P<name>{NAMES}) slår (?P<first>\w+) op og læser (?P<doc>{DOCS})")
def clinician_looks_up_and_reads(world: World, name: str, first: str, doc: str) -> None:
    clinician_looks_up(world, name, first)
    r = world.get(content_url(world.doc(doc)), clinician(name))
    expect_status(r, 200)


@steps.when(rf"(?P<first>\w+) i konsultationen giver (?P<name>{NAMES}) lov, og han bruger værdispring "
            r"(?P<why>med hendes samtykke)",
            rf"(?P<first>\w+) bliver bragt bevidstløs ind, og (?P<name>{NAMES}) bruger værdispring, "
            r"(?P<why>fordi det er livsvigtigt)")
def vaerdispring(world: World, first: str, name: str, why: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.patient(first),
                                        **{"X-Consent-Override": REASONS[why]}))


@steps.when(rf"(?P<name>{NAMES}) bruger værdispring (?P<why>af nysgerrighed)")
def vaerdispring_without_reason(world: World, name: str, why: str) -> None:
    vaerdispring(world, "Bente", name, why)


@steps.when(r"(?P<first>\w+) ophæver sin spærring")
def lifts_block(world: World, first: str) -> None:
    for bid in world.blocks:
        r = world.request("DELETE", f"/blocks/{bid}", citizen(world.patient(first)))
        check(r.status_code == 200 and r.json()["lifted"] is True, "check-not-lifted", body=r.text)


@steps.when(rf"(?P<name>{NAMES}) også beder om de erstattede notater")
def asks_for_superseded(world: World, name: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.bente, ALL_STATUSES))


@steps.when(r"(?P<first>\w+) forsøger at se (?P<other>\w+ \w+)s (?P<what>notater|log)")
def citizen_tries_another(world: World, first: str, other: str, what: str) -> None:
    me, them = citizen(world.patient(first)), world.patient(other)
    if what == "notater":
        world.last = world.search(me, them)
    else:
        world.last = world.request("GET", "/fhir/AuditEvent", me, params={"patient.identifier": them.identifier},
                                   headers={"Accept-Language": "da"})


# -- Så: the GP system ------------------------------------------------------------------------------------------

@steps.then(r"bærer (?P<doc>notatet .+) lænderygpakkens kode i delingsserverens oplysninger om notatet")
def package_code_kept(world: World, doc: str) -> None:
    """PK-PAKKEKODE-BEVARES: the XDS metadata (the DocumentReference the server answered the submission with)
    carries the care package's code as an event code (eventCodeList: DocumentReference.context.event)."""
    docref = world.doc(doc)
    codings = [c for ev in (docref.get("context") or {}).get("event") or [] for c in ev.get("coding") or []]
    system, code = PACKAGE_CODE
    check(any(c.get("system") == system and c.get("code") == code for c in codings), "check-package-code",
          code=f"{system}|{code}", found=json.dumps(codings))


def package_search(world: World, name: str, first: str) -> httpx.Response:
    """ITI-67 with `event=<package system>|<package code>`: the patient's package notes, as `name` sees them."""
    system, code = PACKAGE_CODE
    r = world.request("GET", "/fhir/DocumentReference", clinician(name),
                      params={"patient.identifier": world.patient(first).identifier, "status": "current",
                              "event": f"{system}|{code}"}, headers={"Accept-Language": "da"})
    looked_up(world, name, r)
    expect_status(r, 200)
    return r


@steps.then(rf"(?P<name>{NAMES}) finder (?P<doc>notatet .+) blandt (?P<first>\w+)s notater fra lænderygpakken")
def finds_among_package_notes(world: World, name: str, doc: str, first: str) -> None:
    """PK-SOEG-PAKKE: ITI-67 with `event=<package system>|<package code>` finds the package's notes."""
    r = package_search(world, name, first)
    check(world.doc(doc)["id"] in shown(r), "check-not-among-package", doc=doc, body=r.text)


@steps.then(rf"finder (?P<name>{NAMES}) ikke (?P<doc>notatet .+) blandt (?P<first>\w+)s notater fra "
            r"lænderygpakken")
def not_among_package_notes(world: World, name: str, doc: str, first: str) -> None:
    """A block holds for the package search as for any other: the blocked package note is not answered."""
    r = package_search(world, name, first)
    check(world.doc(doc)["id"] not in shown(r), "check-shown-despite-block", doc=doc, body=r.text)


@steps.then(r"tager delingsserveren imod (?P<what>notatet|diagnosekortet)")
def accepted(world: World, what: str) -> None:
    assert world.last is not None
    expect_status(world.last, 201)
    assert world.last is not None
    assert world.last.json()["resourceType"] == "DocumentReference"


@steps.then(r"(?P<first>\w+) kan hente notatet præcis, som lægesystemet sendte det")
def retrieved_as_sent(world: World, first: str) -> None:
    assert world.sent is not None
    body, content_type = world.sent
    r = world.get(content_url(world.doc("notatet")), citizen(world.patient(first)))
    expect_status(r, 200)
    check(r.content == body, "check-retrieved-differs")
    check(r.headers["content-type"].startswith(content_type), "check-served-as", found=r.headers["content-type"],
          expected=content_type)


@steps.then(r"er det rettede notat det eneste gældende notat, (?P<first>\w+) kan se")
def only_the_correction(world: World, first: str) -> None:
    r = world.search(citizen(world.patient(first)), world.patient(first))
    assert shown(r) == {world.doc("det rettede notat")["id"]}


@steps.then("det gamle notat er markeret som erstattet af det rettede")
def old_superseded(world: World) -> None:
    old, new = world.doc("det gamle notat"), world.doc("det rettede notat")
    r = world.get(f"/fhir/DocumentReference/{old['id']}", citizen(world.bente))
    check(r.json()["status"] == "superseded", "check-not-superseded", found=r.json().get("status"))
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}]


@steps.then("det gamle notat kan stadig hentes")
def old_retrievable(world: World) -> None:
    r = world.get(content_url(world.doc("det gamle notat")), citizen(world.bente))
    expect_status(r, 200)
    assert r.content == world.bodies["notatet fra årskontrollen"]


@steps.then("afvises rettelsen med besked om, at notatet ikke længere er gældende")
def correction_refused(world: World) -> None:
    expect_status(world.last, 422)
    assert world.last is not None
    assert "replace-not-current" in finding_codes(world.last.json())
    assert "ikke gældende" in diagnostics(world.last)


@steps.then("intet nyt er gemt")
def nothing_stored(world: World) -> None:
    # What anyone can see: the patient's documents are those the scenario knows were stored, no more.
    about = world.patient("Bente")
    known = {d["id"] for d in world.docs.values() if patient_of(d) in (None, about.cpr)}
    check(shown(world.search(citizen(about), about, ALL_STATUSES)) == known, "check-refused-stored")
    # Where the target lets us look into its database (our own server): not a row was written.
    after = world.rows()
    if world.rows_before is not None and after is not None:
        check({t: after[t] for t in STORED} == {t: world.rows_before[t] for t in STORED}, "check-rows-written",
              before=json.dumps(world.rows_before), after=json.dumps(after))


@steps.then("svarer delingsserveren, at notatet allerede er modtaget")
def already_received(world: World) -> None:
    expect_status(world.last, 200)
    assert world.last is not None
    assert world.last.json()["id"] == world.doc("notatet")["id"]


@steps.then(r"(?P<first>\w+) har kun ét notat fra årskontrollen")
def one_note(world: World, first: str) -> None:
    r = world.search(citizen(world.patient(first)), world.patient(first), ALL_STATUSES)
    assert shown(r) == {world.doc("notatet")["id"]}


@steps.then(r'afvises notatet med fejlen "(?P<code>[^"]+)" i "(?P<element>[^"]+)"')
def refused_with_finding(world: World, code: str, element: str) -> None:
    expect_status(world.last, 422)
    assert world.last is not None
    issue = next((i for i in world.last.json()["issue"] if code in {c["code"] for c in i["details"]["coding"]}),
                 None)
    check(issue is not None, "check-no-finding", code=code, body=world.last.text)
    assert issue is not None
    assert issue["severity"] == "error"
    m = re.fullmatch(r"Bundle\.entry\[(\d+)\]\.resource\.(.+)", issue["expression"][0])
    assert m, issue["expression"]
    assert world.draft is not None
    assert f"{world.draft['entry'][int(m.group(1))]['resource']['resourceType']}.{m.group(2)}" == element


@steps.then("forklaringen er på dansk og siger, hvilken titel der var forventet")
def explained_in_danish(world: World) -> None:
    text = diagnostics(world.last)
    assert "forventede" in text
    assert f'"Journalnotat for {world.bente.cpr}"' in text


@steps.then("afvises notatet med besked om, at det er skrevet af en anden organisation")
def refused_other_organisation(world: World) -> None:
    expect_status(world.last, 403)
    assert world.last is not None
    assert "not-own-organisation" in finding_codes(world.last.json())
    text = diagnostics(world.last)
    assert "skrevet af organisationen" in text
    assert world.draft_author.sor in text and GP_CLINIC.sor in text


@steps.then("diagnosekortet er beskrevet som en problemliste fra almen praksis")
def problem_list(world: World) -> None:
    d = world.doc("diagnosekortet")
    assert [c["code"] for c in d["type"]["coding"]] == ["11450-4"]
    assert [c["code"] for c in d["context"]["facilityType"]["coding"]] == ["394761003"]
    assert [c["code"] for c in d["context"]["practiceSetting"]["coding"]] == ["408443003"]


@steps.then("kan notatet ikke længere hentes, og svaret siger, at det er fejlregistreret")
def gone(world: World) -> None:
    r = world.get(content_url(world.doc("notatet")), citizen(world.bente))
    expect_status(r, 410)
    assert "fejlregistreret" in diagnostics(r)


@steps.then(r"(?P<first>\w+) har ingen gældende notater")
def no_current(world: World, first: str) -> None:
    assert shown(world.search(citizen(world.patient(first)), world.patient(first))) == set()


# -- Så: what people see ------------------------------------------------------------------------------------------

@steps.then(rf"ser (?P<who>{NAMES}|\w+) (?P<docs>{DOCS})")
def sees(world: World, who: str, docs: str) -> None:
    assert shown(world.found[who]) == world.ids(docs)


@steps.then(rf"(?P<name>{NAMES}) ser stadig (?P<docs>{DOCS})")
def still_sees(world: World, name: str, docs: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.bente))
    assert shown(world.found[name]) == world.ids(docs)


@steps.then(rf"ikke (?P<docs>{DOCS})")
def does_not_see(world: World, docs: str) -> None:
    assert not shown(world.found[world.last_looker]) & world.ids(docs)


@steps.then(rf"ser (?P<name>{NAMES}) ingen notater om (?P<first>\w+)")
def sees_nothing(world: World, name: str, first: str) -> None:
    bundle = world.found[name].json()
    expect_status(world.found[name], 200)
    check(bundle["total"] == 0, "check-expected-nothing", found=bundle["total"])
    assert bundle.get("entry", []) == []  # not even a warning: a block on this person answers with nothing


@steps.then(rf"(?P<name>{NAMES}) får at vide, at nogle notater ikke er vist, fordi patienten har spærret for dem")
def told_some_hidden(world: World, name: str) -> None:
    warnings = entries(world.found[name].json(), "OperationOutcome")
    check(len(warnings) == 1, "check-one-warning", found=len(warnings))
    assert [i["severity"] for i in warnings[0]["issue"]] == ["warning"]
    assert warnings[0]["issue"][0]["diagnostics"].startswith(
        "nogle dokumenter vises måske ikke, fordi patienten har spærret for dem")


@steps.then(rf"får (?P<name>{NAMES}) at vide, at (?:han|hun) ingen aktuel behandlingsrelation har til patienten")
def told_no_relation(world: World, name: str) -> None:
    r = world.found[name]
    expect_status(r, 403)
    assert "no-treatment-relation" in finding_codes(r.json())
    assert "ingen aktuel behandlingsrelation til patienten" in diagnostics(r)
    assert "entry" not in r.json()


@steps.then("beskeden henviser til sundhedsloven § 42 a")
def cites_the_law(world: World) -> None:
    assert "sundhedsloven § 42 a" in diagnostics(world.last)


@steps.then(rf"(?P<name>{NAMES}) kan heller ikke hente (?P<doc>{DOCS})")
def cannot_retrieve(world: World, name: str, doc: str) -> None:
    r = world.get(content_url(world.doc(doc)), clinician(name))
    expect_status(r, 403)
    assert "no-treatment-relation" in finding_codes(r.json())


@steps.then(rf"(?P<name>{NAMES}) kan læse (?P<doc>{DOCS})")
def can_read(world: World, name: str, doc: str) -> None:
    r = world.get(content_url(world.doc(doc)), clinician(name))
    expect_status(r, 200)
    assert r.content == world.bodies[ALIASES.get(doc, doc)]


@steps.then(rf"får (?P<name>{NAMES}) at vide, at (?P<message>værdispring kræver .+)")
def told_override_reason(world: World, name: str, message: str) -> None:
    r = world.found[name]
    expect_status(r, 400)
    assert diagnostics(r) == message


@steps.then(r"får (?P<first>\w+) at vide, at en borger kun kan se sine egne oplysninger")
def told_own_only(world: World, first: str) -> None:
    expect_status(world.last, 403)
    assert world.last is not None
    assert diagnostics(world.last) == "en borger kan kun se sine egne oplysninger"


# -- Så: MinLog ----------------------------------------------------------------------------------------------------

def by(event: dict[str, Any]) -> str:
    return str(event["agent"][0]["who"]["identifier"]["value"])


def vaerdispring_in(event: dict[str, Any]) -> bool:
    return any(pe.get("text") == "værdispring" for pe in event.get("purposeOfEvent", []))


@steps.then(rf"Bentes log viser ikke, at (?P<name>{NAMES}) har slået hende op")
def not_in_minlog(world: World, name: str) -> None:
    assert CLINICIANS[name][0] not in {by(e) for e in world.minlog()}


@steps.then(rf"Bentes log viser, at (?P<name>{NAMES}) fra (?P<org>{ORGS}) har set hendes notater med værdispring")
def minlog_vaerdispring(world: World, name: str, org: str) -> None:
    mine = [e for e in world.minlog() if by(e) == CLINICIANS[name][0]]
    check(mine, "check-not-in-minlog")
    check(all(vaerdispring_in(e) for e in mine), "check-not-vaerdispring")
    assert {e["agent"][0]["location"]["identifier"]["value"] for e in mine} == {ORGANISATIONS[org]}


@steps.then(rf"viser Bentes log, at (?P<name>{NAMES}) fra (?P<org>{ORGS}) har søgt i og læst hendes notater")
def minlog_search_and_read(world: World, name: str, org: str) -> None:
    mine = [e for e in world.minlog() if by(e) == CLINICIANS[name][0]]
    assert sorted(e["subtype"][0]["code"] for e in mine) == ["ITI-67", "ITI-68"]
    assert {e["agent"][0]["location"]["identifier"]["value"] for e in mine} == {ORGANISATIONS[org]}
    assert not any(vaerdispring_in(e) for e in mine)


@steps.then("Bentes log viser hverken hendes egne opslag eller lægesystemets deling")
def minlog_professionals_only(world: World) -> None:
    events = world.minlog()
    check(events, "check-log-empty")
    assert {e["agent"][0]["type"]["coding"][0]["code"] for e in events} == {"clinician"}
    assert world.bente.cpr not in {by(e) for e in events}


@steps.then("Bentes log er tom")
def minlog_empty(world: World) -> None:
    check(world.minlog() == [], "check-log-not-empty")


# -- borger/svar_hjemmefra.feature: questionnaire responses, scores and triage (issue 12) -----------------------

PACKAGE_ANSWERS = "https://kroniker.example/fhir/lbp/CodeSystem/answers"
PATIENT_QUESTIONNAIRE = "https://kroniker.example/fhir/lbp/Questionnaire/lbp-patient|0.1.0"
ASSESSMENT_QUESTIONNAIRE = "https://kroniker.example/fhir/lbp/Questionnaire/lbp-gp-assessment|0.1.0"


def _answer(code: str) -> dict[str, Any]:
    return {"valueCoding": {"system": PACKAGE_ANSWERS, "code": code}}


def back_answers(patient: Patient, status: str = "completed") -> dict[str, Any]:
    """The patient's questionnaire as a patient app sends it: STarT Back items 1-3 agreed, 4-8 not, item 9
    "slightly" (total 3, psychosocial 0: low risk by Keele's rule); every ODI section at level 1; SILS "never"."""
    startback = [{"linkId": f"startback.{i}", "answer": [_answer("agree" if i <= 3 else "disagree")]}
                 for i in range(1, 9)] + [{"linkId": "startback.9", "answer": [_answer("slightly")]}]
    return {"resourceType": "QuestionnaireResponse", "questionnaire": PATIENT_QUESTIONNAIRE, "status": status,
            "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": patient.cpr}},
            "authored": "2026-11-03T10:15:00+01:00", "item": [
                {"linkId": "hl", "item": [{"linkId": "hl.sils.1", "answer": [_answer("never")]},
                                          {"linkId": "hl.chew.1", "answer": [_answer("conf-extremely")]}]},
                {"linkId": "startback", "item": startback},
                {"linkId": "odi", "item": [{"linkId": f"odi.{i}", "answer": [_answer("level-1")]}
                                           for i in range(1, 11)]}]}


def gp_assessment(patient: Patient) -> dict[str, Any]:
    items = [("gp.need", "need-low"), ("gp.red-flags", "no"), ("gp.multimorbidity", "no"),
             ("gp.social-resources", "resources-good")]
    return {"resourceType": "QuestionnaireResponse", "questionnaire": ASSESSMENT_QUESTIONNAIRE, "status": "completed",
            "subject": {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": patient.cpr}},
            "authored": "2026-11-05T09:00:00+01:00",
            "item": [{"linkId": link, "answer": [_answer(code)]} for link, code in items]}


def _post_json(world: World, path: str, principal: Principal, body: dict[str, Any]) -> httpx.Response:
    world.rows_before = world.rows()
    world.last = world.request("POST", path, principal, json_body=body, headers={"Accept-Language": "da"})
    return world.last


def _clinical(world: World, resource_type: str, principal: Principal, patient: Patient) -> httpx.Response:
    return world.request("GET", f"/fhir/{resource_type}", principal, params={"patient.identifier": patient.identifier},
                         headers={"Accept-Language": "da"})


@steps.given(r"at (?P<name>\w+ \w+) er tilmeldt (?P<clinic>.+)")
def listed_with_clinic(world: World, name: str, clinic: str) -> None:
    assert clinic in CLINICS, clinic
    given_name, family = name.split(" ")
    p = world.patients[name] = world.patients[given_name] = world.new_patient(given_name, family)
    world.relate(p, organisation=CLINICS[clinic].sor, evidence="assigned-gp")


@steps.when(r"(?P<first>\w+) sender sine svar om ryggen hjemmefra")
def send_answers(world: World, first: str) -> None:
    p = world.patient(first)
    _post_json(world, "/fhir/QuestionnaireResponse", citizen(p), back_answers(p))


@steps.given(r"at (?P<first>\w+) har sendt sine svar om ryggen hjemmefra")
def answers_sent(world: World, first: str) -> None:
    send_answers(world, first)
    assert world.last is not None and world.last.status_code == 201, \
        f"the server did not take a valid response: {diagnostics(world.last)}"


@steps.when(r"(?P<first>\w+) sender et skema, hun ikke er færdig med")
def send_unfinished(world: World, first: str) -> None:
    p = world.patient(first)
    _post_json(world, "/fhir/QuestionnaireResponse", citizen(p), back_answers(p, status="in-progress"))


@steps.then("er svarene modtaget")
def answers_received(world: World) -> None:
    r = world.last
    assert r is not None and r.status_code == 201, f"expected 201, got {diagnostics(r)}"
    assert r.headers.get("location", "").rstrip("/").endswith(f"/fhir/QuestionnaireResponse/{r.json()['id']}")


@steps.then(r"klinikken kan se (?P<first>\w+)s STarT Back-score (?P<total>\d+) med (?P<risk>lav|mellem|høj) risiko")
def clinic_sees_scores(world: World, first: str, total: str, risk: str) -> None:
    r = _clinical(world, "Observation", source(), world.patient(first))
    assert r.status_code == 200, f"the clinic could not read the scores: {diagnostics(r)}"
    startback = {c.get("code"): o for o in entries(r.json(), "Observation")
                 for c in (o.get("code") or {}).get("coding") or [] if str(c.get("system")).endswith("/startback")}
    assert startback.get("total", {}).get("valueInteger") == int(total), f"STarT Back total: {startback.get('total')}"
    expected = {"lav": "low", "mellem": "medium", "høj": "high"}[risk]
    assert startback.get("risk", {}).get("valueString") == expected, f"STarT Back risk: {startback.get('risk')}"


@steps.then(r'afvises svarene med fejlen "(?P<code>[^"]+)"')
def answers_refused(world: World, code: str) -> None:
    r = world.last
    assert r is not None and r.status_code == 422 and is_outcome(r), f"expected 422, got {diagnostics(r)}"
    assert code in finding_codes(r.json()), f"{code} not among {finding_codes(r.json())}"


@steps.then("der er ikke gemt noget")
def nothing_of_the_answers_stored(world: World) -> None:
    after = world.rows()
    if after is not None and world.rows_before is not None:
        assert {t: n for t, n in after.items() if t != "audit_events"} == \
            {t: n for t, n in world.rows_before.items() if t != "audit_events"}


@steps.when(r"lægesystemet beder om et triageforslag med lægens vurdering af (?P<first>\w+)")
def ask_for_triage(world: World, first: str) -> None:
    r = _post_json(world, "/fhir/ClinicalImpression/$triage", source(), gp_assessment(world.patient(first)))
    assert r.status_code == 201, f"the server gave no triage suggestion: {diagnostics(r)}"
    world.docs["forslaget"] = r.json()


@steps.then(r"kan (?P<first>\w+) ikke se nogen farve endnu")
def no_colour_yet(world: World, first: str) -> None:
    p = world.patient(first)
    r = _clinical(world, "ClinicalImpression", citizen(p), p)
    assert r.status_code == 200, f"the citizen's search was refused: {diagnostics(r)}"
    assert entries(r.json(), "ClinicalImpression") == [], "the citizen sees the suggestion before the GP decided"


@steps.when(r'lægen vælger (?P<colour>rød|gul|grøn) med begrundelsen "(?P<reason>[^"]+)"')
def gp_decides(world: World, colour: str, reason: str) -> None:
    body = {"suggestion": world.docs["forslaget"]["id"],
            "colour": {"rød": "red", "gul": "yellow", "grøn": "green"}[colour], "reason": reason}
    r = _post_json(world, "/fhir/ClinicalImpression/$decide", source(), body)
    assert r.status_code == 201, f"the GP's decision was not stored: {diagnostics(r)}"
    world.docs["beslutningen"] = r.json()


@steps.then(r"kan (?P<first>\w+) se lægens beslutning")
def citizen_sees_decision(world: World, first: str) -> None:
    p = world.patient(first)
    r = _clinical(world, "ClinicalImpression", citizen(p), p)
    seen = {o["id"] for o in entries(r.json(), "ClinicalImpression")}
    assert world.docs["beslutningen"]["id"] in seen and world.docs["forslaget"]["id"] in seen, seen


@steps.when(r"(?P<first>\w+) prøver at se (?P<owner>\w+)s svar og scorer")
def other_patient_looks(world: World, first: str, owner: str) -> None:
    looker, p = citizen(world.patient(first)), world.patient(owner)
    world.found[first] = _clinical(world, "QuestionnaireResponse", looker, p)
    world.found[f"{first}-scores"] = _clinical(world, "Observation", looker, p)


@steps.then(r"får (?P<first>\w+) ingen af (?P<owner>\w+)s svar eller scorer")
def other_patient_gets_nothing(world: World, first: str, owner: str) -> None:
    for r in (world.found[first], world.found[f"{first}-scores"]):
        assert r.status_code == 403 and is_outcome(r), f"expected 403, got {diagnostics(r)}"
        assert "citizen-other-patient" in finding_codes(r.json())


# -- borger/fuldmagt.feature: a parent, a holder of fuldmagt; borger/ventetid.feature: the embargo -------------

# The embargo the server suite expects of its target (docs/conformance.md): a Shared Note (DocumentReference.type
# SNOMED CT 866144008) is shown to citizens 24 hours after its date; no other type is held back. Our own servers
# are started with it (LocalServer, tests/test_features_server.py); a vendor's is set up so
# (`kroniker serve --embargo 866144008=24`). Every other scenario's notes are dated weeks back, so it holds
# nothing of theirs.
NOTE_TYPE = "866144008"
EMBARGO = {NOTE_TYPE: 24.0}
DANISH = ZoneInfo("Europe/Copenhagen")
PROXY_KINDS = {"som forælder": "custody", "med fuldmagt": "fuldmagt"}


def _today(world: World) -> dt.date:
    """The Danish date the scenario runs on (recorded, so that a replay makes the same people)."""
    return dt.date.fromisoformat(world.ctx.observe("today", lambda: dt.datetime.now(DANISH).date().isoformat()))


def _years_before(day: dt.date, years: int) -> dt.date:
    """The same day `years` years earlier (28 February for a 29 February without one)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return dt.date(day.year - years, 2, 28)


def _person(world: World, given: str, family: str, born: dt.date, n: int | None = None) -> Patient:
    """A person of the scenario born that day (the CPR number by the century rule), known by both names."""
    p = born_patient(world.ctx.serial() if n is None else n, born, given, family)
    world.patients[f"{given} {family}"] = world.patients[given] = p
    return p


def _aged(world: World, given: str, family: str, years: int) -> Patient:
    """Someone who is `years` old today: they turned it 1 to 180 days ago, the day picked by the run's numbering
    (a thousand numbers a scenario in the project's tests), so that scenarios sharing a server meet no one."""
    n = world.ctx.serial()
    return _person(world, given, family, _years_before(_today(world), years) - dt.timedelta(days=1 + (n // 1000) % 180),
                   n)


def _proxy(world: World, kind: str, holder: Patient, subject: Patient, start: str | None = None) -> None:
    body = {"kind": kind, "holder": holder.cpr, "subject": subject.cpr, **({"start": start} if start else {})}
    r = world.request("POST", "/admin/proxies", ADMIN, json_body=body, headers={"Accept-Language": "da"})
    expect_status(r, 201)
    world.proxies[subject.cpr] = str(r.json()["id"])


def _minlog_of(world: World, patient: Patient) -> list[dict[str, Any]]:
    """The patient's MinLog, as the patient reads it."""
    r = world.request("GET", "/fhir/AuditEvent", citizen(patient), params={"_count": "1000"})
    expect_status(r, 200)
    return [e["resource"] for e in r.json().get("entry", [])]


@steps.given(r"at (?P<given>\w+) (?P<family>\w+) på (?P<years>\d+) år er patient hos (?P<clinic>.+)")
def aged_patient_at(world: World, given: str, family: str, years: str, clinic: str) -> None:
    assert clinic in CLINICS, clinic
    _aged(world, given, family, int(years))


@steps.given(r"at (?P<given>\w+) (?P<family>\w+) fyldte (?P<years>\d+) år for en uge siden og er patient hos "
             r"(?P<clinic>.+)")
def turned_last_week(world: World, given: str, family: str, years: str, clinic: str) -> None:
    assert clinic in CLINICS, clinic
    _person(world, given, family, _years_before(_today(world) - dt.timedelta(days=7), int(years)))


@steps.given(r"at lægen har delt et notat fra årskontrollen og et diagnosekort om (?P<first>\w+)")
def gp_shared_about(world: World, first: str) -> None:
    p = world.patient(first)
    for label, doc in (("notatet fra årskontrollen", note(p, name=world.name("note"))),
                       ("diagnosekortet", card(p, name=world.name("card")))):
        body = encode(doc)
        r = world.submit(source(), body)
        expect_status(r, 201)
        world.docs[label], world.bodies[label] = r.json(), body


@steps.given(r"at (?P<given>\w+) (?P<family>\w+) har forældremyndigheden over (?P<first>\w+)")
def has_custody(world: World, given: str, family: str, first: str) -> None:
    _proxy(world, "custody", _aged(world, given, family, 40), world.patient(first))


@steps.given(r"at (?P<given>\w+) (?P<family>\w+) fik forældremyndigheden over (?P<first>\w+), da (?:han|hun) var "
             r"(?P<years>\d+) år")
def had_custody(world: World, given: str, family: str, first: str, years: str) -> None:
    child = world.patient(first)
    born = cpr_birth_date(child.cpr)
    assert born is not None
    since = born.replace(year=born.year + int(years)) if (born.month, born.day) != (2, 29) else \
        dt.date(born.year + int(years), 3, 1)
    _proxy(world, "custody", _aged(world, given, family, 40), child, start=since.isoformat())


@steps.given(r"at (?P<first>\w+) har givet sin (?:søn|datter|mand|kone), (?P<given>\w+) (?P<family>\w+), fuldmagt")
def gave_fuldmagt(world: World, first: str, given: str, family: str) -> None:
    _proxy(world, "fuldmagt", _aged(world, given, family, 45), world.patient(first))


def _opens_for(world: World, holder: str, subject: str) -> httpx.Response:
    r = world.search(citizen(world.patient(holder)), world.patient(subject))
    looked_up(world, holder, r)
    return r


@steps.given(r"at (?P<holder>\w+) har set (?P<subject>\w+)s journalnotater")
def has_looked_for(world: World, holder: str, subject: str) -> None:
    expect_status(_opens_for(world, holder, subject), 200)


@steps.when(r"(?P<holder>\w+) åbner (?P<subject>\w+)s journalnotater")
def opens_for(world: World, holder: str, subject: str) -> None:
    _opens_for(world, holder, subject)


@steps.when(r"(?P<first>\w+) tilbagekalder fuldmagten")
def revokes(world: World, first: str) -> None:
    # Digital Fuldmagt is the register; the reference server's admin endpoint stands in for it (docs/server.md).
    pid = world.proxies[world.patient(first).cpr]
    r = world.request("DELETE", f"/admin/proxies/{pid}", ADMIN)
    check(r.status_code == 200 and r.json().get("ended") is True, "check-proxy-not-ended", body=r.text)


@steps.when(r"(?P<holder>\w+) forsøger at ophæve (?P<subject>\w+)s spærring")
def holder_lifts(world: World, holder: str, subject: str) -> None:
    """As a citizen's app would: list the subject's blocks, then lift the one the scenario set."""
    check(world.blocks, "check-no-block")
    me = citizen(world.patient(holder))
    world.found[f"{holder}-blocks"] = world.request("GET", "/blocks", me,
                                                    params={"patient": world.patient(subject).cpr},
                                                    headers={"Accept-Language": "da"})
    world.last = world.request("DELETE", f"/blocks/{world.blocks[-1]}", me, headers={"Accept-Language": "da"})


@steps.then(r"får (?P<first>\w+) at vide, at kun borgeren selv kan spærre og ophæve spærringer")
def told_only_the_citizen_blocks(world: World, first: str) -> None:
    listed = world.found[f"{first}-blocks"]
    expect_status(listed, 403)
    assert diagnostics(listed) == "kun borgeren selv kan spærre og ophæve spærringer"
    # The lifting itself is refused too: 403, or 404 as for a block that is not there (either says nothing).
    assert world.last is not None
    check(world.last.status_code in (403, 404) and is_outcome(world.last), "check-lifted-anyway",
          found=world.last.status_code, body=world.last.text)


@steps.then(rf"(?:\w+ )?(?P<name>{NAMES}) ser stadig ingen notater om (?P<first>\w+)")
def still_sees_nothing(world: World, name: str, first: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.patient(first)))
    sees_nothing(world, name, first)


@steps.then(rf"(?P<holder>\w+) kan hente (?P<doc>{DOCS}) om (?P<subject>\w+)")
def holder_retrieves(world: World, holder: str, doc: str, subject: str) -> None:
    r = world.get(content_url(world.doc(doc)), citizen(world.patient(holder)))
    expect_status(r, 200)
    check(r.content == world.bodies[ALIASES.get(doc, doc)], "check-retrieved-differs")


@steps.then(rf"(?P<holder>\w+) kan heller ikke hente (?P<doc>{DOCS}) om (?P<subject>\w+)")
def holder_cannot_retrieve(world: World, holder: str, doc: str, subject: str) -> None:
    """Refused as any other citizen is: 403, or 404 as for a document that is not there (either says nothing)."""
    r = world.get(content_url(world.doc(doc)), citizen(world.patient(holder)))
    check(r.status_code in (403, 404) and is_outcome(r), "check-retrieved-anyway", found=r.status_code,
          body=r.text)


def _on_behalf(world: World, holder: str, subject: str) -> list[dict[str, Any]]:
    h = world.patient(holder)
    return [e for e in _minlog_of(world, world.patient(subject)) if by(e) == h.cpr]


def _minlog_shows(world: World, subject: str, holder: str, how: str, wanted: set[str]) -> None:
    """§2.5: MinLog shows access as parent, guardian or attorney: who acted, for whom, and as what."""
    mine, s = _on_behalf(world, holder, subject), world.patient(subject)
    check(mine, "check-not-in-minlog")
    kinds = {c["code"] for e in mine for r in e["agent"][0].get("role", []) for c in r.get("coding", [])}
    check(kinds == {PROXY_KINDS[how]}, "check-proxy-kind", expected=PROXY_KINDS[how], found=sorted(kinds))
    check(all(s.cpr in e["agent"][0]["who"].get("display", "") for e in mine), "check-not-on-behalf",
          body=json.dumps([e["agent"][0]["who"] for e in mine], ensure_ascii=False))
    subtypes = {c["code"] for e in mine for c in e.get("subtype", [])}
    check(wanted <= subtypes, "check-minlog-actions", expected=sorted(wanted), found=sorted(subtypes))


@steps.then(r"(?P<subject>\w+)s log viser, at (?P<holder>\w+) har søgt i og læst (?:hendes|hans) notater "
            r"(?P<how>som forælder|med fuldmagt)")
def minlog_searched_and_read_for(world: World, subject: str, holder: str, how: str) -> None:
    _minlog_shows(world, subject, holder, how, {"ITI-67", "ITI-68"})


@steps.then(r"(?P<subject>\w+)s log viser, at (?P<holder>\w+) har søgt i (?:hendes|hans) notater "
            r"(?P<how>som forælder|med fuldmagt), mens (?:den|forældremyndigheden) gjaldt")
def minlog_searched_for(world: World, subject: str, holder: str, how: str) -> None:
    _minlog_shows(world, subject, holder, how, {"ITI-67"})


@steps.then(r"(?P<holder>\w+)s egen log viser intet om (?P<subject>\w+)")
def own_minlog_says_nothing_of(world: World, holder: str, subject: str) -> None:
    """MinLog is by patient: the holder's own holds nothing of the look-ups made for another."""
    text = json.dumps(_minlog_of(world, world.patient(holder)))
    named = [x for x in (world.patient(subject).cpr, *(d["id"] for d in world.docs.values())) if x in text]
    check(not named, "check-minlog-names-other", found=", ".join(named))


# -- the embargo (borger/ventetid.feature) ------------------------------------------------------------------

@steps.given(r"at delingsserveren først viser borgeren lægens notater (?P<hours>\d+) timer efter, at de er skrevet")
def embargo_set_up(world: World, hours: str) -> None:
    """The target's set-up, not a request: the hours must be those the server suite asks targets to run with."""
    check(float(hours) == EMBARGO[NOTE_TYPE], "check-embargo-set-up", hours=hours, expected=EMBARGO[NOTE_TYPE])


@steps.given(r"at (?:hendes læge|lægen) for en time siden har delt et notat fra dagens konsultation"
             r"(?: om (?P<first>\w+))?")
def fresh_note_shared(world: World, first: str | None = None) -> None:
    now = dt.datetime.fromisoformat(world.ctx.observe("now", lambda: dt.datetime.now(DANISH).isoformat()))
    created, updated = (now - dt.timedelta(minutes=70)), (now - dt.timedelta(minutes=60))
    doc = note(world.patient(first) if first else world.bente, name=world.name("today"),
               created=created.isoformat(timespec="seconds"), updated=updated.isoformat(timespec="seconds"))
    body = encode(doc)
    r = world.submit(source(), body)
    expect_status(r, 201)
    world.docs["notatet fra dagens konsultation"], world.bodies["notatet fra dagens konsultation"] = r.json(), body


@steps.then(rf"(?P<first>\w+) kan endnu ikke hente (?P<doc>{DOCS})")
def not_yet_retrievable(world: World, first: str, doc: str) -> None:
    """Held back, it is answered as a document that is not there (docs/server.md, Embargo): 404, for the metadata
    and for the document."""
    d = world.doc(doc)
    for url in (f"/fhir/DocumentReference/{d['id']}", content_url(d)):
        r = world.get(url, citizen(world.patient(first)))
        check(r.status_code == 404 and is_outcome(r), "check-retrieved-anyway", found=r.status_code, body=r.text)
