"""Package notes found on their own (issue 12): the server keeps a note's event codes (the care package's code among
them) in its XDS metadata, and `event=<system>|<code>` (or the bare code) finds only the notes with that code, under
the same access rules as any search, on SQLite and PostgreSQL.

Expected values come from the issue and IHE ITI-67 (`event` is a token parameter on DocumentReference.context.event;
`system|code` or `code`), not from the server's answers: the package code is the one the package data names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kroniker.clinical.content import Content
from kroniker.clinical.note import build_note
from kroniker.reference_server import audit
from kroniker.reference_server.db import metadata
from kroniker.validators.packages import PackageCache
from tests.server_support import (
    ADMIN,
    DPO,
    GP_CLINIC,
    HOSPITAL_SOR,
    OTHER_CLINIC,
    PHYSIO_SOR,
    Clinic,
    Patient,
    Server,
    citizen,
    clinician,
    finding_codes,
    ids,
    is_outcome,
    new_patient,
    note,
    server_for,
    source,
)

PACKAGE_SYSTEM = "https://kroniker.example/fhir/lbp/CodeSystem/care-package"
PACKAGE = f"{PACKAGE_SYSTEM}|lbp"
SNOMED = "http://snomed.info/sct"
# SNOMED CT 33879002 "Administration of vaccine to product active immunity (procedure)": the flu shot's event.
VACCINATION = (SNOMED, "33879002")
FLU_NOTE = "<p>Influenzavaccination givet i venstre overarm. Ingen reaktion efter 15 minutter.</p>"


@pytest.fixture(scope="module")
def cache(care_package_cache: PackageCache) -> PackageCache:
    """MedCom's packages and kroniker's care package, installed by the public commands (the server's cache)."""
    return care_package_cache


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           cache: PackageCache) -> Iterator[Server]:
    with server_for(request, tmp_path_factory, cache) as srv:
        yield srv


def package_note(cache: PackageCache, patient: Patient, clinic: Clinic = GP_CLINIC) -> dict[str, Any]:
    """The annual control's package note, as `kroniker note build` makes it, about `patient` by `clinic`."""
    return build_note({
        "patient": {"cpr": patient.cpr, "given": " ".join(patient.given), "family": patient.family},
        "author": {"given": "Jens", "family": "Holm", "authorisation": "0C4QN"},
        "clinic": {"sor": clinic.sor, "name": clinic.name, "ydernummer": clinic.ydernummer},
        "date": "2026-11-20T09:15:00+01:00", "diagnosis": "L03",
        "goals": "Gå 30 minutter fem dage om ugen", "plan": "Hjemmeøvelser fra fysioterapeut",
        "next_control": "2027-11-20", "triage_colour": "green",
        "scores": {"startback.total": 3, "odi.percent": 22.0, "startback.risk": "low"},
        "free_text": "Årskontrol. Smerter stabile.",
    }, Content(cache))


def flu_note(patient: Patient) -> dict[str, Any]:
    return note(patient, note_html=FLU_NOTE, event_codes=[VACCINATION])


def found(server: Server, who: Any, patient: Patient, **params: str) -> set[str]:
    r = server.search(who, patient, **params)
    assert r.status_code == 200, r.text
    return ids(r.json())


@pytest.fixture(scope="module")
def bente(server: Server, cache: PackageCache) -> tuple[Patient, dict[str, Any], dict[str, Any]]:
    """One patient with an annual control package note and a flu-vaccination note."""
    p = new_patient("Bente", "Lænderyg")
    return p, server.shared(source(), package_note(cache, p)), server.shared(source(), flu_note(p))


# -- the metadata carries the event codes -------------------------------------------------------------------------

def test_the_package_code_is_in_the_document_references_context_event(
        bente: tuple[Patient, dict[str, Any], dict[str, Any]]) -> None:
    _, pkg, flu = bente
    codings = [c for ev in pkg["context"]["event"] for c in ev["coding"]]
    assert {"system": PACKAGE_SYSTEM, "code": "lbp"} in codings
    # The diagnosis is an event code too (ICPC-2 L03, the input's), so it is not lost either.
    assert "L03" in {c["code"] for c in codings}
    assert [c for ev in flu["context"]["event"] for c in ev["coding"]] == [
        {"system": VACCINATION[0], "code": VACCINATION[1]}]


# -- the search -------------------------------------------------------------------------------------------------

def test_the_package_search_finds_the_package_note_and_not_the_vaccination_note(
        server: Server, bente: tuple[Patient, dict[str, Any], dict[str, Any]]) -> None:
    p, pkg, flu = bente
    me = citizen(p)
    assert found(server, me, p) == {pkg["id"], flu["id"]}
    assert found(server, me, p, event=PACKAGE) == {pkg["id"]}
    assert found(server, me, p, event="lbp") == {pkg["id"]}  # a bare code: any system
    assert found(server, me, p, event=f"{SNOMED}|{VACCINATION[1]}") == {flu["id"]}
    assert found(server, me, p, event=f"{PACKAGE},{SNOMED}|{VACCINATION[1]}") == {pkg["id"], flu["id"]}  # OR
    assert found(server, me, p, event=f"{SNOMED}|lbp") == set()  # the package's code in another system
    # Repeated: both must hold (AND); no note is both.
    r = server.get("/fhir/DocumentReference", me, params=[
        ("patient.identifier", f"urn:oid:1.2.208.176.1.2|{p.cpr}"), ("status", "current"),
        ("event", PACKAGE), ("event", f"{SNOMED}|{VACCINATION[1]}")])
    assert r.status_code == 200 and ids(r.json()) == set()


def test_a_clinician_with_a_treatment_relation_finds_the_package_notes(server: Server) -> None:
    p = new_patient("Ib", "Ryg")
    pkg = server.shared(source(), package_note_for(server, p))
    server.shared(source(), flu_note(p))
    server.relate(p, organisation=PHYSIO_SOR, evidence="referral")
    physio = clinician("FYS01", sor=PHYSIO_SOR, name="Fysioterapeut Test")
    assert found(server, physio, p, event=PACKAGE) == {pkg["id"]}


def package_note_for(server: Server, patient: Patient, clinic: Clinic = GP_CLINIC) -> dict[str, Any]:
    return package_note(PackageCache(server.settings.package_cache), patient, clinic)


def test_another_patients_package_notes_never_appear(server: Server) -> None:
    a, b = new_patient("Anna", "Ager"), new_patient("Bo", "Bæk")
    mine = server.shared(source(), package_note_for(server, a))
    theirs = {server.shared(source(), package_note_for(server, b))["id"]}
    server.relate(a, organisation=HOSPITAL_SOR)
    for who in (citizen(a), clinician("ABC12")):
        assert found(server, who, a, event=PACKAGE) == {mine["id"]}
        assert found(server, who, a, event="lbp") & theirs == set()
    # The citizen asking about the other patient is refused, package code or not.
    r = server.search(citizen(a), b, event=PACKAGE)
    assert r.status_code == 403 and is_outcome(r)
    assert "citizen-other-patient" in finding_codes(r.json())


@pytest.mark.parametrize("who, status, reason", [
    (ADMIN, 403, "role-may-not-read"),
    (DPO, 403, "role-may-not-read"),
    (source(), 403, "role-may-not-read"),
    (clinician("NOREL"), 403, "no-treatment-relation"),
    (None, 401, None),
])
def test_the_wrong_role_is_refused_the_package_search(server: Server, who: Any, status: int,
                                                       reason: str | None) -> None:
    p = new_patient("Rita", "Rolle")
    server.shared(source(), package_note_for(server, p))
    r = server.search(who, p, event=PACKAGE)
    assert r.status_code == status, r.text
    assert is_outcome(r)
    assert "entry" not in r.json() and "DocumentReference" not in r.text  # no document in a refusal
    if reason:
        assert reason in finding_codes(r.json())


def test_a_block_filters_package_notes_like_any_other(server: Server) -> None:
    p = new_patient("Svend", "Spær")
    ours = server.shared(source(), package_note_for(server, p))
    theirs = server.shared(source(OTHER_CLINIC), package_note_for(server, p, OTHER_CLINIC))
    server.relate(p, organisation=HOSPITAL_SOR)
    doctor = clinician("BLK01")
    assert found(server, doctor, p, event=PACKAGE) == {ours["id"], theirs["id"]}
    assert server.block(citizen(p), kind="organisation", organisation=OTHER_CLINIC.sor).status_code == 201
    r = server.search(doctor, p, event=PACKAGE)
    assert r.status_code == 200
    assert ids(r.json()) == {ours["id"]}
    assert "filtered-by-block" in {c["code"] for e in r.json()["entry"] if e["resource"]["resourceType"] ==
                                   "OperationOutcome" for i in e["resource"]["issue"]
                                   for c in i["details"]["coding"]}
    # Værdispring shows it again, as for any search.
    r = server.search(doctor, p, event=PACKAGE, headers={"X-Consent-Override": "vital-interest"})
    assert r.status_code == 200, r.text
    assert ids(r.json()) == {ours["id"], theirs["id"]}


def test_the_package_search_is_audited_like_other_searches(
        server: Server, bente: tuple[Patient, dict[str, Any], dict[str, Any]]) -> None:
    p, pkg, _ = bente
    before = len(list(audit.iter_all(server.engine)))
    assert found(server, citizen(p), p, event=PACKAGE) == {pkg["id"]}
    new = list(audit.iter_all(server.engine))[before:]
    assert [r["action"] for r in new] == ["search"]
    assert new[0]["patient_cpr"] == p.cpr
    assert json.loads(new[0]["documents"]) == [pkg["id"]]
    assert ["event", PACKAGE] in json.loads(new[0]["detail"])["query"]
    # The refused one is recorded as well.
    before = len(list(audit.iter_all(server.engine)))
    server.search(ADMIN, p, event=PACKAGE)
    refused = list(audit.iter_all(server.engine))[before:]
    assert len(refused) == 1 and refused[0]["outcome"] != "0"


def test_a_note_claiming_the_package_without_its_section_is_refused_and_not_stored(server: Server) -> None:
    p = new_patient("Nina", "Notat")
    doc = note(p, note_html="<p>Årskontrol. Smerter stabile.</p>",
               event_codes=[(PACKAGE_SYSTEM, "lbp"), ("http://hl7.org/fhir/sid/icpc-2", "L03")])
    before = server.rows()
    r = server.submit(source(), doc)
    assert r.status_code == 422, r.text
    assert "PACKAGE-NOTE-SECTION" in finding_codes(r.json())
    after = server.rows()
    assert {t: after[t] - before[t] for t in ("documents", "document_events")} == {"documents": 0,
                                                                                    "document_events": 0}
    assert found(server, citizen(p), p, event=PACKAGE) == set()


def test_the_conformance_suites_package_note_is_a_package_note(server: Server, cache: PackageCache) -> None:
    """features/kliniker/pakkenotater.feature shares conformance.documents.package_note: with kroniker's package
    installed it must pass the package profile (its section and diagnosis), not only MedCom's."""
    from kroniker.conformance.documents import flu_note as suite_flu_note
    from kroniker.conformance.documents import package_note as suite_package_note
    from kroniker.validators.validate import Validator

    p = new_patient("Karl", "Konform")
    doc = suite_package_note(p)
    report = Validator(cache).validate(json.dumps(doc, ensure_ascii=False).encode())
    assert report.valid and not report.errors(), [(f.code, f.location) for f in report.errors()]
    assert "kroniker.lbp" in {pkg.name for pkg in report.packages}  # held to the package profile
    pkg, flu = server.shared(source(), doc), server.shared(source(), suite_flu_note(p))
    assert found(server, citizen(p), p, event=PACKAGE) == {pkg["id"]}
    assert flu["id"] in found(server, citizen(p), p)


# -- malformed event values: 400, nothing searched ------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "",  # empty
    f"{PACKAGE_SYSTEM}|",  # a system without a code
    "|lbp",  # no system, then a code: not taken (say the bare code)
    "a|b|lbp",  # two bars
    f"{PACKAGE},",  # an empty second value
    "l bp",  # whitespace
    "x" * 65,  # a code longer than the store keeps
    "s" * 201 + "|lbp",  # a system longer than the store keeps
])
def test_a_malformed_event_value_is_refused_with_an_operation_outcome(server: Server, value: str) -> None:
    p = new_patient("Mads", "Misdannet")
    r = server.search(citizen(p), p, event=value)
    assert r.status_code == 400, r.text
    assert is_outcome(r)
    assert "bad-search-token" in finding_codes(r.json())
    da = server.search(citizen(p), p, event=value, headers={"Accept-Language": "da"}).json()
    assert "skal være en kode eller system|kode" in json.dumps(da, ensure_ascii=False)


# -- stored by index, the same on both databases -----------------------------------------------------------------

def test_event_codes_are_stored_with_their_patient_and_indexed(server: Server,
                                                               bente: tuple[Patient, dict[str, Any], dict[str, Any]]
                                                               ) -> None:
    import sqlalchemy as sa

    p, pkg, _ = bente
    with server.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT patient_cpr, system, code FROM document_events WHERE document_id = :d"),
                            {"d": pkg["id"]}).all()
        assert (p.cpr, PACKAGE_SYSTEM, "lbp") in {tuple(r) for r in rows}
        indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(conn).get_indexes("document_events")}
        assert indexes["ix_document_events_patient_code"] == ["patient_cpr", "code", "system"]
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in differences if "document_events" in repr(d)] == []


def test_the_migration_gives_existing_event_codes_their_documents_patient(database_url: str) -> None:
    """A database from before 0004: its event rows take the patient from their document, then are searchable."""
    import datetime as dt

    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from kroniker.reference_server import db
    from kroniker.reference_server.store import SearchQuery, Store

    engine = db.make_engine(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_audit_keyed")
    when = dt.datetime(2026, 11, 20, 8, 15)
    with engine.begin() as conn:
        for doc_id, cpr, code in (("d1", "0101407001", "lbp"), ("d2", "0201407002", "lbp"), ("d3", "0101407001", "x")):
            conn.execute(sa.text(
                "INSERT INTO documents (id, master_identifier, content_sha256, content, content_type, standard, "
                "patient_cpr, status, type_system, type_code, author_org_sor, created, docref) VALUES (:id, :m, "
                "'0', :c, 'application/fhir+json', 'notes', :cpr, 'current', 's', 't', '1', :w, '{}')"),
                {"id": doc_id, "m": f"urn:{doc_id}", "c": b"{}", "cpr": cpr, "w": when})
            conn.execute(sa.text("INSERT INTO document_events (document_id, system, code) VALUES (:d, :s, :c)"),
                         {"d": doc_id, "s": PACKAGE_SYSTEM, "c": code})
    db.migrate(engine)
    with engine.connect() as conn:
        rows = {tuple(r) for r in conn.execute(sa.text("SELECT document_id, patient_cpr FROM document_events"))}
    assert rows == {("d1", "0101407001"), ("d2", "0201407002"), ("d3", "0101407001")}
    store = Store(engine, b"k" * 32)
    try:
        hits = store.search(SearchQuery("0101407001", ["current"], events=[[(PACKAGE_SYSTEM, "lbp")]]))
        assert [d.id for d in hits] == ["d1"]
    finally:
        store.close()
