"""References inside a document, resolved by FHIR's rules (R4 Bundle, "Resolving references in Bundles"),
by one resolver that the validator and the server's metadata share.

Expected values come from the R4 text: a relative reference is made absolute against the RESTful base of the
referring entry's fullUrl and looked up by fullUrl; from an entry whose fullUrl is a URN it has no defined
meaning; nothing resolves by resource type and id alone."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kroniker.reference_server.metadata import MetadataError, derive
from kroniker.validators.references import BundleIndex, Entry, full_url_problem, restful_base
from kroniker.validators.validate import Validator
from tests import builders

pytestmark = pytest.mark.needs_shared

OTHER_CPR = "0101709995"  # a second fictitious patient (passes DK Core's CPR format)
OTHER_SOR = "1234561000016008"


def _entry(full_url: str | None, rtype: str, rid: str, index: int = 0, **extra: Any) -> Entry:
    return Entry(index, {"resourceType": rtype, "id": rid, **extra}, ("entry", index, "resource"),
                 f"Bundle.entry[{index}].resource", full_url)


# -- the resolver on its own (examples of R4's Bundle page) ------------------------------------------------

def test_a_relative_reference_resolves_against_the_restful_base_of_the_referring_entry() -> None:
    obs = _entry("http://example.org/fhir/Observation/123", "Observation", "123", 0)
    pat = _entry("http://example.org/fhir/Patient/34", "Patient", "34", 1)
    index = BundleIndex([obs, pat])
    assert index.resolve("Patient/34", obs) is pat
    assert index.resolve({"reference": "Patient/34"}, obs) is pat
    assert index.resolve("http://example.org/fhir/Patient/34", obs) is pat


def test_the_same_type_and_id_under_another_base_is_not_the_referenced_resource() -> None:
    obs = _entry("http://example.org/fhir/Observation/123", "Observation", "123", 0)
    elsewhere = _entry("http://other.example/fhir/Patient/34", "Patient", "34", 1)
    assert BundleIndex([obs, elsewhere]).resolve("Patient/34", obs) is None


def test_a_relative_reference_from_a_urn_entry_has_no_defined_meaning() -> None:
    comp = _entry("urn:uuid:2f0cf3a4-0f5e-4a43-9c53-1d7a3d3f2a10", "Composition", "c", 0)
    pat = _entry("urn:uuid:8e5c2a51-3f0e-4d0e-a0c5-7d3e8f4b9a11", "Patient", "8e5c2a51-3f0e-4d0e-a0c5-7d3e8f4b9a11", 1)
    index = BundleIndex([comp, pat])
    assert index.resolve("Patient/8e5c2a51-3f0e-4d0e-a0c5-7d3e8f4b9a11", comp) is None
    assert index.resolve("urn:uuid:8e5c2a51-3f0e-4d0e-a0c5-7d3e8f4b9a11", comp) is pat


def test_a_versioned_reference_matches_the_entry_with_that_version_or_none() -> None:
    obs = _entry("http://example.org/fhir/Observation/1", "Observation", "1", 0)
    pat = _entry("http://example.org/fhir/Patient/34", "Patient", "34", 1, meta={"versionId": "2"})
    index = BundleIndex([obs, pat])
    assert index.resolve("Patient/34/_history/2", obs) is pat
    assert index.resolve("http://example.org/fhir/Patient/34/_history/2", obs) is pat
    assert index.resolve("Patient/34/_history/1", obs) is None


@pytest.mark.parametrize(("full_url", "base"), [
    ("http://example.org/fhir/Patient/34", "http://example.org/fhir"),
    ("https://x.example/a/b/Organization/o-1/_history/3", "https://x.example/a/b"),
    ("urn:uuid:8e5c2a51-3f0e-4d0e-a0c5-7d3e8f4b9a11", None),
    ("http://example.org/", None),
])
def test_the_restful_base_of_a_full_url(full_url: str, base: str | None) -> None:
    assert restful_base(full_url) == base


@pytest.mark.parametrize(("full_url", "problem"), [
    ("https://kroniker.example/fhir/Patient/abc", None),
    ("urn:uuid:8e5c2a51-3f0e-4d0e-a0c5-7d3e8f4b9a11", None),
    ("urn:oid:1.2.208.176.1.2", None),
    ("urn:uuid:not-a-uuid", "uuid"),
    ("urn:oid:1.02.3", "oid"),
    ("Patient/abc", "relative"),
    ("https://kroniker.example/fhir/Patient/abc/_history/1", "versioned"),
])
def test_malformed_full_urls_are_named(full_url: str, problem: str | None) -> None:
    assert full_url_problem(full_url) == problem


# -- the validator's verdicts -------------------------------------------------------------------------------

def _codes(report: Any) -> set[str]:
    return {f.code for f in report.errors()}


def _index_of(doc: dict[str, Any], rtype: str) -> int:
    return next(i for i, e in enumerate(doc["entry"]) if e["resource"]["resourceType"] == rtype)


def _smuggled(doc: dict[str, Any], rtype: str, identifier_value: str) -> dict[str, Any]:
    """The attack: a second `rtype` with the same id under another fullUrl base, placed before the real one,
    carrying another identifier (another patient's CPR, another clinic's SOR)."""
    out = copy.deepcopy(doc)
    i = _index_of(out, rtype)
    twin = copy.deepcopy(out["entry"][i])
    twin["fullUrl"] = twin["fullUrl"].replace("https://kroniker.example/fhir", "https://evil.example/fhir")
    twin["resource"]["identifier"][0]["value"] = identifier_value
    out["entry"].insert(1, twin)
    return out


@pytest.mark.parametrize(("rtype", "value"), [("Patient", OTHER_CPR), ("Organization", OTHER_SOR)])
def test_a_second_entry_with_the_same_type_and_id_is_an_error(validator: Validator, rtype: str, value: str) -> None:
    doc = _smuggled(builders.shared_note(), rtype, value)
    report = validator.validate(json.dumps(doc).encode())
    dup = [f for f in report.errors() if f.code == "DOC-ENTRY-ID-UNIQUE"]
    i = _index_of(builders.shared_note(), rtype) + 1  # the real one, moved down by the twin at entry[1]
    assert [(f.location, f.params["other"]) for f in dup] == \
        [(f"Bundle.entry[{i}].resource", "Bundle.entry[1].resource")]


def test_a_relative_reference_to_a_urn_uuid_entry_is_unresolved(validator: Validator) -> None:
    doc = builders.shared_note()
    i = _index_of(doc, "Patient")
    pid = doc["entry"][i]["resource"]["id"]
    doc["entry"][i]["fullUrl"] = f"urn:uuid:{pid}"  # a legal fullUrl, but `Patient/<id>` no longer points to it
    report = validator.validate(json.dumps(doc).encode())
    unresolved = {f.location for f in report.errors() if f.code == "ref-unresolved"}
    assert "Bundle.entry[0].resource.subject.reference" in unresolved
    assert all(f.second == "DOC-REF-RESOLVE" for f in report.errors() if f.code == "ref-unresolved")


def test_a_malformed_full_url_is_reported(validator: Validator) -> None:
    doc = builders.shared_note()
    doc["entry"][1]["fullUrl"] = "urn:uuid:12345"
    report = validator.validate(json.dumps(doc).encode())
    found = [f for f in report.errors() if f.code == "DOC-ENTRY-FULLURL"]
    assert [(f.location, f.message_key) for f in found] == [("Bundle.entry[1].fullUrl", "fullurl-uuid")]


def test_our_own_documents_still_resolve_every_reference(validator: Validator) -> None:
    for doc in (builders.shared_note(), builders.diagnosis_card()):
        report = validator.validate(json.dumps(doc).encode())
        assert report.valid, [str(f) for f in report.errors()]


# -- the server's metadata uses the same resolver ----------------------------------------------------------

def _derive(doc: dict[str, Any]) -> Any:
    return derive(doc, "medcom.fhir.dk.notes", "1.0.0", "application/fhir+json", b"")


def test_metadata_files_the_patient_and_author_the_composition_references() -> None:
    meta = _derive(builders.shared_note())
    assert (meta.patient_cpr, meta.author_org_sor) == (builders.PATIENT["cpr"], builders.CLINIC["sor"])


@pytest.mark.parametrize(("rtype", "value"), [("Patient", OTHER_CPR), ("Organization", OTHER_SOR)])
def test_metadata_refuses_a_document_with_two_entries_of_the_same_type_and_id(rtype: str, value: str) -> None:
    with pytest.raises(MetadataError):
        _derive(_smuggled(builders.shared_note(), rtype, value))


def test_metadata_never_files_under_a_resource_the_reference_does_not_name() -> None:
    doc = builders.shared_note()
    i = _index_of(doc, "Patient")
    doc["entry"][i]["fullUrl"] = f"urn:uuid:{doc['entry'][i]['resource']['id']}"  # unresolvable `Patient/<id>`
    with pytest.raises(MetadataError):
        _derive(doc)
