"""Questionnaire responses, scores and triage through the reference server (issue 12, item 3), on SQLite and
PostgreSQL.

Expected scores come from the published rules (docs/clinical.md): STarT Back total = items agreed (+ item 9 when
"very much"/"extremely"), low risk at ≤ 3; ODI percent = sum / (5 × answered sections) × 100. Who may do what comes
from the issue: the citizen about themselves, a clinician with a treatment relation, the patient's own clinic.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kroniker.validators.packages import PackageCache
from tests.clinical_support import assessment, patient_response
from tests.server_support import (
    ADMIN,
    GP_CLINIC,
    OTHER_CLINIC,
    Patient,
    Server,
    citizen,
    clinician,
    finding_codes,
    is_outcome,
    new_patient,
    server_for,
    source,
)

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"


@pytest.fixture(scope="module")
def cache(care_package_cache: PackageCache) -> PackageCache:
    return care_package_cache


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           cache: PackageCache) -> Iterator[Server]:
    with server_for(request, tmp_path_factory, cache) as srv:
        yield srv


def about(resource: dict[str, Any], p: Patient) -> dict[str, Any]:
    resource["subject"] = {"identifier": {"system": CPR_SYSTEM, "value": p.cpr}}
    return resource


def post(server: Server, path: str, who: Any, body: dict[str, Any]) -> Any:
    return server.request("POST", path, who, json=body, headers={"Content-Type": "application/fhir+json"})


def search(server: Server, resource_type: str, who: Any, p: Patient, **headers: str) -> Any:
    return server.get(f"/fhir/{resource_type}", who, params={"patient.identifier": f"{CPR_SYSTEM}|{p.cpr}"},
                      headers=headers or None)


def rows(server: Server) -> int:
    with server.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM clinical_resources")).scalar_one()


def answered(server: Server, p: Patient, **kwargs: Any) -> dict[str, Any]:
    r = post(server, "/fhir/QuestionnaireResponse", citizen(p), about(patient_response(**kwargs), p))
    assert r.status_code == 201, r.text
    return r.json()


def listed_with(server: Server, p: Patient, clinic: Any = GP_CLINIC) -> None:
    server.relate(p, organisation=clinic.sor, evidence="assigned-gp")


def test_a_citizen_answers_from_home_and_the_scores_are_stored(server: Server) -> None:
    p = new_patient("Hanne", "Hjemme")
    # Three of STarT's first eight agreed (items 1, 2, 3: not psychosocial), item 9 "slightly": total 3, low risk.
    # ODI sections 1-7, 9, 10 at level 2, section 8 unanswered: 18 / (5 × 9) × 100 = 40.0, "moderate".
    r = post(server, "/fhir/QuestionnaireResponse", citizen(p), about(patient_response(
        startback=(True, True, True, False, False, False, False, False),
        odi=(2, 2, 2, 2, 2, 2, 2, None, 2, 2)), p))
    assert r.status_code == 201, r.text
    qr = r.json()
    assert r.headers["location"].endswith(f"/fhir/QuestionnaireResponse/{qr['id']}")
    got = search(server, "Observation", citizen(p), p).json()
    by_item = {e["resource"]["code"].get("text"): e["resource"] for e in got["entry"]}
    assert got["total"] == len(by_item) > 0
    assert all(e["resource"]["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{qr['id']}"}]
               for e in got["entry"])
    flat = [e["resource"] for e in got["entry"]]
    ints = sorted(o.get("valueInteger") for o in flat if "valueInteger" in o)
    assert 3 in ints  # the STarT total
    assert any(o.get("valueString") == "low" for o in flat)
    assert any((o.get("valueQuantity") or {}).get("value") == 40.0 for o in flat)
    assert any(o.get("valueString") == "moderate" for o in flat)
    mine = search(server, "QuestionnaireResponse", citizen(p), p).json()
    assert [e["resource"]["id"] for e in mine["entry"]] == [qr["id"]]
    assert server.get(f"/fhir/QuestionnaireResponse/{qr['id']}", citizen(p)).json()["id"] == qr["id"]


def test_a_create_answers_the_resource_as_a_read_gives_it(server: Server) -> None:
    # FHIR's create (http.html#create): the answer's resource is the stored one, with meta.versionId and
    # meta.lastUpdated; ETag W/"<versionId>" on the create and on every read of it.
    p = new_patient("Mette", "Meta")
    listed_with(server, p)
    r = post(server, "/fhir/QuestionnaireResponse", citizen(p), about(patient_response(), p))
    t = post(server, "/fhir/ClinicalImpression/$triage", source(), about(assessment(cpr=p.cpr), p))
    assert r.status_code == t.status_code == 201, (r.text, t.text)
    d = server.request("POST", "/fhir/ClinicalImpression/$decide", source(),
                       json={"suggestion": t.json()["id"], "colour": "green", "reason": "Kendt forløb"})
    assert d.status_code == 201, d.text
    for made in (r, t, d):
        resource = made.json()
        assert resource["meta"]["versionId"] == "1" and resource["meta"]["lastUpdated"]
        assert made.headers["etag"] == 'W/"1"'
        read = server.get(made.headers["location"], source())
        assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
        assert read.json() == resource


def test_an_invalid_response_is_refused_with_its_findings_and_nothing_stored(server: Server) -> None:
    p = new_patient()
    before = rows(server)
    r = post(server, "/fhir/QuestionnaireResponse", citizen(p), about(patient_response(status="in-progress"), p))
    assert r.status_code == 422 and is_outcome(r)
    assert "QR-STATUS" in finding_codes(r.json())
    r = post(server, "/fhir/QuestionnaireResponse", citizen(p), {"resourceType": "Patient"})
    assert r.status_code == 422 and is_outcome(r)
    r = server.request("POST", "/fhir/QuestionnaireResponse", citizen(p), content=b"{not json",
                       headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400 and is_outcome(r)
    assert rows(server) == before


def test_a_citizen_cannot_answer_for_another_patient(server: Server) -> None:
    a, b = new_patient("Anna", "A"), new_patient("Bo", "B")
    before = rows(server)
    r = post(server, "/fhir/QuestionnaireResponse", citizen(b), about(patient_response(), a))
    assert r.status_code == 403 and "citizen-other-patient" in finding_codes(r.json())
    assert rows(server) == before


def test_no_patients_data_reaches_another_patient(server: Server) -> None:
    a, b = new_patient("Anna", "Andersen"), new_patient("Bo", "Berg")
    qr = answered(server, a)
    obs = search(server, "Observation", citizen(a), a).json()["entry"][0]["resource"]
    for resource_type in ("QuestionnaireResponse", "Observation", "ClinicalImpression"):
        r = search(server, resource_type, citizen(b), a)
        assert r.status_code == 403 and "citizen-other-patient" in finding_codes(r.json())
    assert server.get(f"/fhir/QuestionnaireResponse/{qr['id']}", citizen(b)).status_code == 404
    assert server.get(f"/fhir/Observation/{obs['id']}", citizen(b)).status_code == 404
    # A clinician's relation with A gives nothing of B; the clinic listing A gives nothing of B.
    answered(server, b)
    doctor = clinician("QRDOC1")
    server.relate(a, clinician_id=doctor.auth_id, evidence="referral")
    listed_with(server, a)
    assert search(server, "QuestionnaireResponse", doctor, a).json()["total"] == 1
    r = search(server, "QuestionnaireResponse", doctor, b)
    assert r.status_code == 403 and "no-treatment-relation" in finding_codes(r.json())
    r = search(server, "Observation", source(), b)
    assert r.status_code == 403 and "not-own-clinic" in finding_codes(r.json())


def test_a_clinicians_look_up_is_in_minlog_and_a_general_block_answers_nothing(server: Server) -> None:
    p = new_patient("Mette", "Minlog")
    answered(server, p)
    doctor = clinician("QRDOC2")
    server.relate(p, clinician_id=doctor.auth_id, evidence="referral")
    before = len(server.minlog(p))
    assert search(server, "Observation", doctor, p).json()["total"] > 0
    assert len(server.minlog(p)) == before + 1
    assert server.block(citizen(p), kind="general").status_code == 201
    got = search(server, "QuestionnaireResponse", doctor, p)
    assert got.status_code == 200 and got.json()["total"] == 0


def test_the_clinic_triages_the_gp_decides_and_the_citizen_sees_the_colour_only_then(server: Server) -> None:
    p = new_patient("Torben", "Triage")
    answered(server, p)
    r = post(server, "/fhir/ClinicalImpression/$triage", source(), about(assessment(cpr=p.cpr), p))
    assert r.status_code == 403 and "not-own-clinic" in finding_codes(r.json())
    listed_with(server, p)
    r = post(server, "/fhir/ClinicalImpression/$triage", source(OTHER_CLINIC), about(assessment(cpr=p.cpr), p))
    assert r.status_code == 403
    r = post(server, "/fhir/ClinicalImpression/$triage", source(), about(assessment(cpr=p.cpr), p))
    assert r.status_code == 201, r.text
    suggestion = r.json()
    assert suggestion["resourceType"] == "ClinicalImpression"
    assert search(server, "ClinicalImpression", source(), p).json()["total"] == 1
    # Not before the GP has decided (the default setting): filtered, not refused.
    hidden = search(server, "ClinicalImpression", citizen(p), p)
    assert hidden.status_code == 200 and hidden.json()["total"] == 0
    assert server.get(f"/fhir/ClinicalImpression/{suggestion['id']}", citizen(p)).status_code == 404
    # Changing the colour needs a reason (clinical.decide); the citizen cannot decide.
    r = post(server, "/fhir/ClinicalImpression/$decide", citizen(p), {"suggestion": suggestion["id"], "colour": "red"})
    assert r.status_code == 403
    r = server.request("POST", "/fhir/ClinicalImpression/$decide", source(),
                       json={"suggestion": suggestion["id"], "colour": "purple"})
    assert r.status_code == 422 and "TRIAGE-COLOUR" in finding_codes(r.json())
    r = server.request("POST", "/fhir/ClinicalImpression/$decide", source(),
                       json={"suggestion": suggestion["id"], "colour": "red", "reason": "Tiltagende smerter"})
    assert r.status_code == 201, r.text
    shown = search(server, "ClinicalImpression", citizen(p), p).json()
    assert {e["resource"]["id"] for e in shown["entry"]} == {suggestion["id"], r.json()["id"]}


def test_only_the_admin_registers_the_clinic_a_patient_is_listed_with(server: Server) -> None:
    p = new_patient()
    r = server.request("POST", "/admin/relations", source(), json={
        "patient": p.cpr, "organisation": GP_CLINIC.sor, "evidence": "assigned-gp"})
    assert r.status_code == 403
    assert server.request("POST", "/admin/relations", ADMIN, json={
        "patient": p.cpr, "organisation": GP_CLINIC.sor, "evidence": "assigned-gp"}).status_code == 201


def test_migration_0005_makes_the_table_the_server_declares(server: Server) -> None:
    """The migrated database (SQLite or PostgreSQL) has clinical_resources exactly as db.py declares it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kroniker.reference_server.db import metadata

    with server.engine.connect() as conn:
        indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(conn).get_indexes("clinical_resources")}
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert indexes["ix_clinical_resources_patient_type_created"] == ["patient_cpr", "resource_type", "created"]
    assert [d for d in differences if "clinical_resources" in repr(d)] == []
    # At the one head of the history, and 0005 on the way there.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import kroniker.reference_server.db as db

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    scripts = ScriptDirectory.from_config(cfg)
    assert [head] == scripts.get_heads()
    assert "0005_clinical" in {r.revision for r in scripts.walk_revisions("base", head)}


def test_with_the_setting_the_citizen_sees_the_suggestion_before_the_decision(
        tmp_path: Path, cache: PackageCache) -> None:
    from kroniker.reference_server.settings import Settings
    from tests.server_support import running

    with running(Settings(home=tmp_path, package_cache=cache.root, citizen_sees_suggestion=True)) as srv:
        p = new_patient("Signe", "Synlig")
        answered(srv, p)
        listed_with(srv, p)
        r = post(srv, "/fhir/ClinicalImpression/$triage", source(), about(assessment(cpr=p.cpr), p))
        assert r.status_code == 201, r.text
        shown = search(srv, "ClinicalImpression", citizen(p), p).json()
        assert [e["resource"]["id"] for e in shown["entry"]] == [r.json()["id"]]


def test_the_clinics_look_up_is_in_minlog_and_a_block_on_the_clinic_answers_nothing(server: Server) -> None:
    p = new_patient("Klara", "Klinik")
    answered(server, p)
    listed_with(server, p)
    before = len(server.minlog(p))
    assert search(server, "QuestionnaireResponse", source(), p).json()["total"] == 1
    assert len(server.minlog(p)) == before + 1
    assert server.block(citizen(p), kind="organisation", organisation=GP_CLINIC.sor).status_code == 201
    got = search(server, "QuestionnaireResponse", source(), p)
    assert got.status_code == 200 and got.json()["total"] == 0
    assert len(server.minlog(p)) == before + 1  # a look-up answered with nothing is not in MinLog
