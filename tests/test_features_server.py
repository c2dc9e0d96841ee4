"""Step code for features/borger, features/lps and features/kliniker: a citizen, a GP system and clinicians meet the
reference server over HTTP, on SQLite and on PostgreSQL. Every request asks for Danish answers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from kroniker.reference_server.tokens import Principal
from tests import server_support as s
from tests.server_support import (
    ADMIN,
    FHIR_JSON,
    FHIR_XML,
    GP_CLINIC,
    HOSPITAL_SOR,
    OTHER_CLINIC,
    PHYSIO_SOR,
    Clinic,
    Patient,
    Server,
    citizen,
    composition,
    encode,
    entries,
    finding_codes,
    new_patient,
    note,
    source,
)
from tests.xml_writer import to_xml

pytestmark = pytest.mark.network

EMERGENCY_SOR = "3334441000016005"
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


@dataclass
class World:
    """What the scenario has set up and what the last answers were."""

    server: Server
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
    rows_before: dict[str, int] = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)

    def patient(self, name: str) -> Patient:
        return self.patients[name.removesuffix("s") if name not in self.patients else name]

    def da(self, principal: Principal | None, **headers: str) -> dict[str, str]:
        return self.server.auth(principal, **{"Accept-Language": "da", **headers})

    def get(self, url: str, principal: Principal | None, **headers: str) -> httpx.Response:
        return self.server.client.get(url, headers=self.da(principal, **headers))

    def search(self, principal: Principal, patient: Patient, status: str = "current", **headers: str
               ) -> httpx.Response:
        return self.server.search(principal, patient, status, headers={"Accept-Language": "da", **headers})

    def submit(self, principal: Principal, body: bytes, content_type: str = FHIR_JSON,
               replaces: str | None = None) -> httpx.Response:
        self.rows_before = self.server.rows()
        self.last = self.server.submit(principal, body, content_type=content_type, replaces=replaces,
                                       **{"Accept-Language": "da"})
        return self.last

    def doc(self, label: str) -> dict[str, Any]:
        return self.docs[ALIASES.get(label, label)]

    def labels(self, text: str) -> set[str]:
        return {ALIASES.get(x.strip(), x.strip()) for x in re.split(r",\s*| og ", text) if x.strip()}

    def ids(self, text: str) -> set[str]:
        return {self.docs[label]["id"] for label in self.labels(text)}

    @property
    def bente(self) -> Patient:
        return self.patients["Bente"]


@pytest.fixture(autouse=True)
def world(server: Server) -> World:
    return World(server)


# features/borger/spoergeskema.feature is the care package's (tests/test_features_clinical.py), not the server's.
scenarios("borger/min_log.feature", "borger/min_spaerring.feature", "lps", "kliniker")


def clinician(name: str) -> Principal:
    auth_id, org = CLINICIANS[name]
    return s.clinician(auth_id, ORGANISATIONS[org], name=name)


def looked_up(world: World, name: str, response: httpx.Response) -> None:
    world.found[name] = world.last = response
    world.last_looker = name


def diagnostics(response: httpx.Response | None) -> str:
    assert response is not None
    assert s.is_outcome(response), response.text
    return " ".join(i["diagnostics"] for i in response.json()["issue"])


def shown(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {d["id"] for d in entries(response.json())}


# -- Givet: people, documents, relations, blocks ------------------------------------------------------------

@given(parsers.re(r"at (?P<name>\w+ \w+) er patient hos (?P<clinic>[^,]+)"))
def patient_at(world: World, name: str, clinic: str) -> None:
    assert clinic in CLINICS, clinic
    given_name, family = name.split(" ")
    world.patients[name] = world.patients[given_name] = new_patient(given_name, family)


@given(parsers.re(r"at (?P<name>\w+ \w+) også er patient hos (?P<clinic>.+) og har fået delt et notat"))
def another_patient_with_a_note(world: World, name: str, clinic: str) -> None:
    patient_at(world, name, clinic)
    world.docs[f"{name}s notat"] = world.server.shared(source(CLINICS[clinic]),
                                                        note(world.patient(name), CLINICS[clinic]))


@given("at lægen har skrevet et notat fra årskontrollen")
def note_written(world: World) -> None:
    world.draft, world.draft_kind = note(world.bente, name=f"arskontrol-{world.bente.cpr}"), "notatet"


@given("at lægen har registreret lændesmerter på Bentes diagnosekort")
def card_written(world: World) -> None:
    world.draft, world.draft_kind = s.card(world.bente), "diagnosekortet"


@given(parsers.re(r"at (?P<clinic>.+) har skrevet et notat om (?P<first>\w+)"))
def note_by_another_clinic(world: World, clinic: str, first: str) -> None:
    world.draft, world.draft_author = note(world.patient(first), CLINICS[clinic]), CLINICS[clinic]


@given(parsers.parse('at lægesystemet kun skriver "{title}" som titel'))
def title_without_cpr(world: World, title: str) -> None:
    assert world.draft is not None
    composition(world.draft)["title"] = title


@given("at lægesystemet har delt et notat fra årskontrollen")
def note_shared(world: World) -> None:
    note_written(world)
    shares_note(world, "notatet")
    assert world.last is not None and world.last.status_code == 201, world.last.text if world.last else None


@given("at hendes læge har delt et notat fra årskontrollen og hendes diagnosekort")
def gp_shared_note_and_card(world: World) -> None:
    note_shared(world)
    card_written(world)
    shares_note(world, "diagnosekortet")
    assert world.last is not None and world.last.status_code == 201


@given(parsers.re(r"at hendes tidligere læge, (?P<clinic>.+), har delt et notat fra foråret 2025"))
def former_gp_shared(world: World, clinic: str) -> None:
    doc = note(world.bente, CLINICS[clinic], created="2025-05-02T10:00:00+02:00", updated="2025-05-02T10:20:00+02:00")
    world.docs["notatet fra foråret 2025"] = world.server.shared(source(CLINICS[clinic]), doc)


@given(parsers.re(r"at (?:lægen|Bentes læge) har rettet notatet(?: én gang| fra årskontrollen)"))
def note_corrected(world: World) -> None:
    corrects_note(world)
    assert world.last is not None and world.last.status_code == 201, world.last.text if world.last else None


@given(parsers.re(rf"at (?:\w+ )?(?P<name>{NAMES}) på (?P<org>{ORGS}) har fået en henvisning på (?P<first>\w+)"))
def referral(world: World, name: str, org: str, first: str) -> None:
    assert CLINICIANS[name][1] == org
    world.server.relate(world.patient(first), clinician_id=CLINICIANS[name][0], evidence="referral")


@given(parsers.re(rf"at (?:\w+ )?(?P<name>{NAMES}) på (?P<org>{ORGS}) havde en henvisning på (?P<first>\w+), "
                  r"som udløb i sidste måned"))
def expired_referral(world: World, name: str, org: str, first: str) -> None:
    assert CLINICIANS[name][1] == org
    world.server.relate(world.patient(first), clinician_id=CLINICIANS[name][0], evidence="referral",
                        start=s.days_from_now(-90), end=s.days_from_now(-20))


@given(parsers.re(rf"at (?P<org>{ORGS}) har fået en henvisning på (?P<first>\w+)"))
def referral_to_organisation(world: World, org: str, first: str) -> None:
    world.server.relate(world.patient(first), organisation=ORGANISATIONS[org], evidence="referral")


@given(parsers.re(rf"at hendes egen læge, (?P<name>{NAMES}), er tilknyttet hende som praktiserende læge"))
def own_gp(world: World, name: str) -> None:
    assert CLINICIANS[name][1] == GP_CLINIC.name
    world.server.relate(world.bente, clinician_id=CLINICIANS[name][0], evidence="assigned-gp")


def _block(world: World, first: str, **body: str) -> None:
    r = world.server.block(citizen(world.patient(first)), **body)
    assert r.status_code == 201, r.text
    world.blocks.append(r.json()["id"])


@given(parsers.re(r"at (?P<first>\w+) har spærret for alle sundhedspersoner"))
def general_block(world: World, first: str) -> None:
    _block(world, first, kind="general")


@given(parsers.re(rf"at (?P<first>\w+) har spærret for (?P<name>{NAMES})"))
def professional_block(world: World, first: str, name: str) -> None:
    _block(world, first, kind="professional", clinician=CLINICIANS[name][0])


@given(parsers.re(rf"at (?P<first>\w+) har spærret for notater fra (?P<org>{ORGS})"))
def organisation_block(world: World, first: str, org: str) -> None:
    _block(world, first, kind="organisation", organisation=ORGANISATIONS[org])


@given(parsers.re(r"at (?P<first>\w+) har spærret for notater fra (?P<d1>\d+)\. (?P<m1>\w+) til (?P<d2>\d+)\. "
                  r"(?P<m2>\w+) (?P<year>\d{4})"))
def period_block(world: World, first: str, d1: str, m1: str, d2: str, m2: str, year: str) -> None:
    start = f"{year}-{MONTHS[m1]:02d}-{int(d1):02d}"
    # "til 30. juni" includes the 30th, and so does the server's end date (a Danish day, end included).
    end = f"{year}-{MONTHS[m2]:02d}-{int(d2):02d}"
    _block(world, first, kind="period", start=start, end=end)


@given(parsers.re(rf"at (?:\w+ )?(?P<name>{NAMES}) derfor ingen notater ser om (?P<first>\w+)"))
def sees_nothing_yet(world: World, name: str, first: str) -> None:
    r = world.search(clinician(name), world.patient(first))
    assert r.status_code == 200 and r.json()["total"] == 0, r.text


# -- Når: the GP system ------------------------------------------------------------------------------------------

@when(parsers.re(r"lægesystemet deler (?P<what>notatet|diagnosekortet)(?: som (?P<fmt>JSON|XML))?"))
def shares_note(world: World, what: str, fmt: str | None = None) -> None:
    assert world.draft is not None
    body, content_type = (to_xml(world.draft).encode(), FHIR_XML) if fmt == "XML" else (encode(world.draft), FHIR_JSON)
    world.sent = (body, content_type)
    r = world.submit(source(world.draft_author), body, content_type)
    label = "notatet fra årskontrollen" if what == "notatet" else "diagnosekortet"
    if r.status_code == 201:
        world.docs[label], world.bodies[label] = r.json(), body


@when("lægen retter en fejl i notatet, og lægesystemet deler rettelsen i stedet for det gamle notat")
def corrects_note(world: World) -> None:
    old = world.doc("notatet fra årskontrollen")
    fixed = note(world.bente, name=f"rettet-{world.bente.cpr}", updated="2026-11-20T11:05:00+01:00",
                 note_html=s.builders.NOTE_HTML.replace("NRS 4/10", "NRS 3/10"))
    body = encode(fixed)
    r = world.submit(source(), body, replaces=old["id"])
    if r.status_code == 201:
        world.docs["det rettede notat"], world.bodies["det rettede notat"] = r.json(), body


@when("lægesystemet igen forsøger at erstatte det oprindelige notat")
def replaces_the_original_again(world: World) -> None:
    again = note(world.bente, name=f"rettet-igen-{world.bente.cpr}", updated="2026-11-20T12:00:00+01:00")
    world.submit(source(), encode(again), replaces=world.doc("det oprindelige notat")["id"])


@when("forbindelsen svigter, og lægesystemet sender det samme notat igen")
def sends_again(world: World) -> None:
    world.submit(source(), world.bodies["notatet fra årskontrollen"])


@when(parsers.re(r"lægesystemet hos (?P<clinic>.+) forsøger at dele notatet"))
def clinic_shares_anothers_note(world: World, clinic: str) -> None:
    assert world.draft is not None
    world.submit(source(CLINICS[clinic]), encode(world.draft))


@when("supporten markerer notatet som fejlregistreret, fordi det hørte til en anden patient")
def withdrawn(world: World) -> None:
    doc = world.doc("notatet")
    r = world.server.request("PATCH", f"/fhir/DocumentReference/{doc['id']}", ADMIN,
                             json={"status": "entered-in-error", "reason": "hørte til en anden patient"})
    assert r.status_code == 200, r.text


# -- Når: citizens and clinicians ------------------------------------------------------------------------------

@when(parsers.re(r"(?P<first>\w+) åbner sine journalnotater"))
def citizen_opens(world: World, first: str) -> None:
    looked_up(world, first, world.search(citizen(world.patient(first)), world.patient(first)))


@when(parsers.re(rf"(?:\w+ )?(?P<name>{NAMES})(?: (?:på|fra) (?:{ORGS}))? slår (?P<patient>\w+(?: \w+)?) op"))
def clinician_looks_up(world: World, name: str, patient: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.patient(patient)))


@when(parsers.re(rf"(?:\w+ )?(?P<name>{NAMES}) slår (?P<first>\w+) op og læser (?P<doc>{DOCS})"))
def clinician_looks_up_and_reads(world: World, name: str, first: str, doc: str) -> None:
    clinician_looks_up(world, name, first)
    r = world.get(world.doc(doc)["content"][0]["attachment"]["url"], clinician(name))
    assert r.status_code == 200, r.text


@when(parsers.re(rf"(?P<first>\w+) i konsultationen giver (?P<name>{NAMES}) lov, og han bruger værdispring "
                 r"(?P<why>med hendes samtykke)"))
@when(parsers.re(rf"(?P<first>\w+) bliver bragt bevidstløs ind, og (?P<name>{NAMES}) bruger værdispring, "
                 r"(?P<why>fordi det er livsvigtigt)"))
def vaerdispring(world: World, first: str, name: str, why: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.patient(first),
                                        **{"X-Consent-Override": REASONS[why]}))


@when(parsers.re(rf"(?P<name>{NAMES}) bruger værdispring (?P<why>af nysgerrighed)"))
def vaerdispring_without_reason(world: World, name: str, why: str) -> None:
    vaerdispring(world, "Bente", name, why)


@when(parsers.re(r"(?P<first>\w+) ophæver sin spærring"))
def lifts_block(world: World, first: str) -> None:
    for bid in world.blocks:
        r = world.server.request("DELETE", f"/blocks/{bid}", citizen(world.patient(first)))
        assert r.status_code == 200 and r.json()["lifted"] is True, r.text


@when(parsers.re(rf"(?P<name>{NAMES}) også beder om de erstattede notater"))
def asks_for_superseded(world: World, name: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.bente, "current,superseded"))


@when(parsers.re(r"(?P<first>\w+) forsøger at se (?P<other>\w+ \w+)s (?P<what>notater|log)"))
def citizen_tries_another(world: World, first: str, other: str, what: str) -> None:
    me, them = citizen(world.patient(first)), world.patient(other)
    if what == "notater":
        world.last = world.search(me, them)
    else:
        world.last = world.server.get("/fhir/AuditEvent", me, params={"patient.identifier": them.identifier},
                                      headers={"Accept-Language": "da"})


# -- Så: the GP system ------------------------------------------------------------------------------------------

@then(parsers.re(r"tager delingsserveren imod (?P<what>notatet|diagnosekortet)"))
def accepted(world: World, what: str) -> None:
    assert world.last is not None
    assert world.last.status_code == 201, world.last.text
    assert world.last.json()["resourceType"] == "DocumentReference"


@then(parsers.re(r"(?P<first>\w+) kan hente notatet præcis, som lægesystemet sendte det"))
def retrieved_as_sent(world: World, first: str) -> None:
    assert world.sent is not None
    body, content_type = world.sent
    r = world.get(world.doc("notatet")["content"][0]["attachment"]["url"], citizen(world.patient(first)))
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["content-type"].startswith(content_type)


@then(parsers.re(r"er det rettede notat det eneste gældende notat, (?P<first>\w+) kan se"))
def only_the_correction(world: World, first: str) -> None:
    r = world.search(citizen(world.patient(first)), world.patient(first))
    assert shown(r) == {world.doc("det rettede notat")["id"]}


@then("det gamle notat er markeret som erstattet af det rettede")
def old_superseded(world: World) -> None:
    old, new = world.doc("det gamle notat"), world.doc("det rettede notat")
    r = world.get(f"/fhir/DocumentReference/{old['id']}", citizen(world.bente))
    assert r.json()["status"] == "superseded"
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}]


@then("det gamle notat kan stadig hentes")
def old_retrievable(world: World) -> None:
    r = world.get(world.doc("det gamle notat")["content"][0]["attachment"]["url"], citizen(world.bente))
    assert r.status_code == 200
    assert r.content == world.bodies["notatet fra årskontrollen"]


@then("afvises rettelsen med besked om, at notatet ikke længere er gældende")
def correction_refused(world: World) -> None:
    assert world.last is not None and world.last.status_code == 422, world.last.text if world.last else None
    assert "replace-not-current" in finding_codes(world.last.json())
    assert "ikke gældende" in diagnostics(world.last)


@then("intet nyt er gemt")
def nothing_stored(world: World) -> None:
    after = world.server.rows()
    assert after["documents"] == world.rows_before["documents"]
    assert after["document_events"] == world.rows_before["document_events"]


@then("svarer delingsserveren, at notatet allerede er modtaget")
def already_received(world: World) -> None:
    assert world.last is not None and world.last.status_code == 200, world.last.text if world.last else None
    assert world.last.json()["id"] == world.doc("notatet")["id"]


@then(parsers.re(r"(?P<first>\w+) har kun ét notat fra årskontrollen"))
def one_note(world: World, first: str) -> None:
    r = world.search(citizen(world.patient(first)), world.patient(first), "current,superseded")
    assert shown(r) == {world.doc("notatet")["id"]}


@then(parsers.parse('afvises notatet med fejlen "{code}" i "{element}"'))
def refused_with_finding(world: World, code: str, element: str) -> None:
    assert world.last is not None and world.last.status_code == 422, world.last.text if world.last else None
    issue = next(i for i in world.last.json()["issue"] if code in {c["code"] for c in i["details"]["coding"]})
    assert issue["severity"] == "error"
    m = re.fullmatch(r"Bundle\.entry\[(\d+)\]\.resource\.(.+)", issue["expression"][0])
    assert m, issue["expression"]
    assert world.draft is not None
    assert f"{world.draft['entry'][int(m.group(1))]['resource']['resourceType']}.{m.group(2)}" == element


@then("forklaringen er på dansk og siger, hvilken titel der var forventet")
def explained_in_danish(world: World) -> None:
    text = diagnostics(world.last)
    assert "forventede" in text
    assert f'"Journalnotat for {world.bente.cpr}"' in text


@then("afvises notatet med besked om, at det er skrevet af en anden organisation")
def refused_other_organisation(world: World) -> None:
    assert world.last is not None and world.last.status_code == 403
    assert "not-own-organisation" in finding_codes(world.last.json())
    text = diagnostics(world.last)
    assert "skrevet af organisationen" in text
    assert world.draft_author.sor in text and GP_CLINIC.sor in text


@then("diagnosekortet er beskrevet som en problemliste fra almen praksis")
def problem_list(world: World) -> None:
    d = world.doc("diagnosekortet")
    assert [c["code"] for c in d["type"]["coding"]] == ["11450-4"]
    assert [c["code"] for c in d["context"]["facilityType"]["coding"]] == ["394761003"]
    assert [c["code"] for c in d["context"]["practiceSetting"]["coding"]] == ["408443003"]


@then("kan notatet ikke længere hentes, og svaret siger, at det er fejlregistreret")
def gone(world: World) -> None:
    r = world.get(world.doc("notatet")["content"][0]["attachment"]["url"], citizen(world.bente))
    assert r.status_code == 410
    assert "fejlregistreret" in diagnostics(r)


@then(parsers.re(r"(?P<first>\w+) har ingen gældende notater"))
def no_current(world: World, first: str) -> None:
    assert shown(world.search(citizen(world.patient(first)), world.patient(first))) == set()


# -- Så: what people see ------------------------------------------------------------------------------------------

@then(parsers.re(rf"ser (?P<who>{NAMES}|\w+) (?P<docs>{DOCS})"))
def sees(world: World, who: str, docs: str) -> None:
    assert shown(world.found[who]) == world.ids(docs)


@then(parsers.re(rf"(?P<name>{NAMES}) ser stadig (?P<docs>{DOCS})"))
def still_sees(world: World, name: str, docs: str) -> None:
    looked_up(world, name, world.search(clinician(name), world.bente))
    assert shown(world.found[name]) == world.ids(docs)


@then(parsers.re(rf"ikke (?P<docs>{DOCS})"))
def does_not_see(world: World, docs: str) -> None:
    assert not shown(world.found[world.last_looker]) & world.ids(docs)


@then(parsers.re(rf"ser (?P<name>{NAMES}) ingen notater om (?P<first>\w+)"))
def sees_nothing(world: World, name: str, first: str) -> None:
    bundle = world.found[name].json()
    assert world.found[name].status_code == 200
    assert bundle["total"] == 0
    assert bundle.get("entry", []) == []  # not even a warning: a block on this person answers with nothing


@then(parsers.re(rf"(?P<name>{NAMES}) får at vide, at nogle notater ikke er vist, fordi patienten har spærret for dem"))
def told_some_hidden(world: World, name: str) -> None:
    [warning] = entries(world.found[name].json(), "OperationOutcome")
    assert [i["severity"] for i in warning["issue"]] == ["warning"]
    assert warning["issue"][0]["diagnostics"].startswith("nogle dokumenter vises måske ikke, fordi patienten har "
                                                         "spærret for dem")


@then(parsers.re(rf"får (?P<name>{NAMES}) at vide, at (?:han|hun) ingen aktuel behandlingsrelation har til "
                 r"patienten"))
def told_no_relation(world: World, name: str) -> None:
    r = world.found[name]
    assert r.status_code == 403
    assert "no-treatment-relation" in finding_codes(r.json())
    assert "ingen aktuel behandlingsrelation til patienten" in diagnostics(r)
    assert "entry" not in r.json()


@then("beskeden henviser til sundhedsloven § 42 a")
def cites_the_law(world: World) -> None:
    assert "sundhedsloven § 42 a" in diagnostics(world.last)


@then(parsers.re(rf"(?P<name>{NAMES}) kan heller ikke hente (?P<doc>{DOCS})"))
def cannot_retrieve(world: World, name: str, doc: str) -> None:
    r = world.get(world.doc(doc)["content"][0]["attachment"]["url"], clinician(name))
    assert r.status_code == 403
    assert "no-treatment-relation" in finding_codes(r.json())


@then(parsers.re(rf"(?P<name>{NAMES}) kan læse (?P<doc>{DOCS})"))
def can_read(world: World, name: str, doc: str) -> None:
    r = world.get(world.doc(doc)["content"][0]["attachment"]["url"], clinician(name))
    assert r.status_code == 200
    assert r.content == world.bodies[ALIASES.get(doc, doc)]


@then(parsers.re(rf"får (?P<name>{NAMES}) at vide, at (?P<message>værdispring kræver .+)"))
def told_override_reason(world: World, name: str, message: str) -> None:
    r = world.found[name]
    assert r.status_code == 400
    assert diagnostics(r) == message


@then(parsers.re(r"får (?P<first>\w+) at vide, at en borger kun kan se sine egne oplysninger"))
def told_own_only(world: World, first: str) -> None:
    assert world.last is not None and world.last.status_code == 403
    assert diagnostics(world.last) == "en borger kan kun se sine egne oplysninger"


# -- Så: MinLog ----------------------------------------------------------------------------------------------------

def minlog(world: World) -> list[dict[str, Any]]:
    return world.server.minlog(world.bente)


def by(event: dict[str, Any]) -> str:
    return event["agent"][0]["who"]["identifier"]["value"]


def vaerdispring_in(event: dict[str, Any]) -> bool:
    return any(pe.get("text") == "værdispring" for pe in event.get("purposeOfEvent", []))


@then(parsers.re(rf"Bentes log viser ikke, at (?P<name>{NAMES}) har slået hende op"))
def not_in_minlog(world: World, name: str) -> None:
    assert CLINICIANS[name][0] not in {by(e) for e in minlog(world)}


@then(parsers.re(rf"Bentes log viser, at (?P<name>{NAMES}) fra (?P<org>{ORGS}) har set hendes notater med "
                 r"værdispring"))
def minlog_vaerdispring(world: World, name: str, org: str) -> None:
    mine = [e for e in minlog(world) if by(e) == CLINICIANS[name][0]]
    assert mine, "the look-up is not in MinLog"
    assert all(vaerdispring_in(e) for e in mine)
    assert {e["agent"][0]["location"]["identifier"]["value"] for e in mine} == {ORGANISATIONS[org]}


@then(parsers.re(rf"viser Bentes log, at (?P<name>{NAMES}) fra (?P<org>{ORGS}) har søgt i og læst hendes notater"))
def minlog_search_and_read(world: World, name: str, org: str) -> None:
    mine = [e for e in minlog(world) if by(e) == CLINICIANS[name][0]]
    assert sorted(e["subtype"][0]["code"] for e in mine) == ["ITI-67", "ITI-68"]
    assert {e["agent"][0]["location"]["identifier"]["value"] for e in mine} == {ORGANISATIONS[org]}
    assert not any(vaerdispring_in(e) for e in mine)


@then("Bentes log viser hverken hendes egne opslag eller lægesystemets deling")
def minlog_professionals_only(world: World) -> None:
    events = minlog(world)
    assert events
    assert {e["agent"][0]["type"]["coding"][0]["code"] for e in events} == {"clinician"}
    assert world.bente.cpr not in {by(e) for e in events}


@then("Bentes log er tom")
def minlog_empty(world: World) -> None:
    assert minlog(world) == []
