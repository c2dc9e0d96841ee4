"""A note can never land on the wrong patient or clinic: what the server files is what the validator resolved.

The attacks of the trust issue, sent over HTTP to a real server on SQLite and on PostgreSQL: a GP system adds a
second Patient (or Organization) with the same id under another fullUrl base, placed before the real one and
carrying another patient's CPR (another clinic's SOR)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.server_support import (
    GP_CLINIC,
    OTHER_CLINIC,
    Server,
    citizen,
    entries,
    finding_codes,
    is_outcome,
    new_patient,
    note,
    source,
)

pytestmark = pytest.mark.network


def _with_twin(doc: dict[str, Any], rtype: str, identifier_value: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    i = next(i for i, e in enumerate(out["entry"]) if e["resource"]["resourceType"] == rtype)
    twin = copy.deepcopy(out["entry"][i])
    base = twin["fullUrl"].rsplit("/", 2)[0]
    twin["fullUrl"] = twin["fullUrl"].replace(base, "https://evil.example/fhir")
    twin["resource"]["identifier"][0]["value"] = identifier_value
    out["entry"].insert(1, twin)
    return out


def test_a_note_about_a_with_a_smuggled_patient_b_is_refused_and_reaches_nobody(server: Server) -> None:
    a, b = new_patient("Anne", "Aabel"), new_patient("Bo", "Bech")
    before = server.rows()
    r = server.submit(source(), _with_twin(note(a), "Patient", b.cpr))
    assert r.status_code == 422 and is_outcome(r), r.text
    assert "DOC-ENTRY-ID-UNIQUE" in finding_codes(r.json())
    after = server.rows()
    assert after["documents"] == before["documents"]
    for who in (a, b):
        found = server.search(citizen(who), who)
        assert found.status_code == 200 and entries(found.json()) == []


def test_a_clinic_cannot_share_a_note_whose_validated_author_is_another_clinic(server: Server) -> None:
    # OTHER_CLINIC's system sends GP_CLINIC's note with a twin Organization carrying its own SOR first.
    patient = new_patient("Carl", "Cort")
    doc = _with_twin(note(patient, GP_CLINIC), "Organization", OTHER_CLINIC.sor)
    before = server.rows()["documents"]
    r = server.submit(source(OTHER_CLINIC), doc)
    assert r.status_code in (403, 422) and is_outcome(r), r.text
    assert server.rows()["documents"] == before
    assert entries(server.search(citizen(patient), patient).json()) == []


def test_the_honest_note_is_filed_under_the_patient_and_clinic_the_composition_names(server: Server) -> None:
    patient = new_patient("Dorte", "Dahl")
    d = server.shared(source(), note(patient))
    cprs = {i["value"] for r in d["contained"] if r["resourceType"] == "Patient" for i in r["identifier"]}
    assert cprs == {patient.cpr}
    assert [e["id"] for e in entries(server.search(citizen(patient), patient).json())] == [d["id"]]
