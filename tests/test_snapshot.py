"""Snapshot generation from a differential, on small StructureDefinitions made here.

Expected snapshots follow the FHIR R4 rules for differentials (Profiling, "Differential and snapshot"): an element
the differential names takes the differential's cardinality, fixed/pattern, binding and mustSupport and keeps
the rest of the base's; constraints are added to the base's; a new slice is a copy of the sliced element without
its slicing, placed after the sliced element and its children; a profile may not widen cardinality.
"""

from __future__ import annotations

from typing import Any

import pytest

from kroniker.validators.snapshot import SnapshotError, apply, with_snapshot

BASE: dict[str, Any] = {
    "resourceType": "StructureDefinition", "url": "http://example.org/base", "type": "Thing",
    "snapshot": {"element": [
        {"id": "Thing", "path": "Thing", "min": 0, "max": "*"},
        {"id": "Thing.status", "path": "Thing.status", "min": 0, "max": "1", "type": [{"code": "code"}],
         "constraint": [{"key": "base-1", "severity": "error"}]},
        {"id": "Thing.code", "path": "Thing.code", "min": 0, "max": "*", "type": [{"code": "CodeableConcept"}],
         "short": "codes"},
        {"id": "Thing.code.text", "path": "Thing.code.text", "min": 0, "max": "1", "type": [{"code": "string"}]},
        {"id": "Thing.note", "path": "Thing.note", "min": 1, "max": "3", "type": [{"code": "string"}]},
    ]},
}


def profile(*diff: dict[str, Any], base: str = "http://example.org/base") -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "url": "http://example.org/p", "type": "Thing",
            "baseDefinition": base, "derivation": "constraint", "differential": {"element": list(diff)}}


def resolve(url: str) -> dict[str, Any] | None:
    return BASE if url.split("|")[0] == BASE["url"] else None


def by_id(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in sd["snapshot"]["element"]}


def test_a_named_element_takes_the_differentials_values_and_keeps_the_rest() -> None:
    sd = with_snapshot(profile({"id": "Thing.status", "path": "Thing.status", "min": 1, "fixedCode": "final",
                                "mustSupport": True, "constraint": [{"key": "p-1", "severity": "error"}]}), resolve)
    status = by_id(sd)["Thing.status"]
    assert (status["min"], status["max"], status["fixedCode"], status["mustSupport"]) == (1, "1", "final", True)
    assert status["type"] == [{"code": "code"}]  # kept from the base
    assert [c["key"] for c in status["constraint"]] == ["base-1", "p-1"]  # added to the base's
    assert [e["id"] for e in sd["snapshot"]["element"]] == [e["id"] for e in BASE["snapshot"]["element"]]


def test_the_base_is_not_changed() -> None:
    with_snapshot(profile({"id": "Thing.status", "path": "Thing.status", "min": 1}), resolve)
    assert by_id(BASE)["Thing.status"]["min"] == 0


def test_a_new_slice_copies_the_sliced_element_and_goes_after_its_children() -> None:
    sd = with_snapshot(profile(
        {"id": "Thing.code", "path": "Thing.code", "slicing": {"discriminator": [{"type": "pattern", "path": "$this"}],
                                                              "rules": "open"}},
        {"id": "Thing.code:pkg", "path": "Thing.code", "sliceName": "pkg", "min": 1, "max": "1",
         "patternCodeableConcept": {"coding": [{"system": "s", "code": "c"}]}},
        {"id": "Thing.code:pkg.text", "path": "Thing.code.text", "fixedString": "x"}), resolve)
    ids = [e["id"] for e in sd["snapshot"]["element"]]
    assert ids == ["Thing", "Thing.status", "Thing.code", "Thing.code.text", "Thing.code:pkg", "Thing.code:pkg.text",
                   "Thing.note"]
    pkg = by_id(sd)["Thing.code:pkg"]
    assert (pkg["sliceName"], pkg["min"], pkg["max"], pkg["short"]) == ("pkg", 1, "1", "codes")
    assert "slicing" not in pkg and pkg["patternCodeableConcept"]["coding"][0]["code"] == "c"
    assert by_id(sd)["Thing.code"]["slicing"]["rules"] == "open"
    assert by_id(sd)["Thing.code:pkg.text"]["fixedString"] == "x"


def test_a_second_fixed_value_replaces_the_first() -> None:
    base = profile({"id": "Thing.status", "path": "Thing.status", "patternCode": "a"})
    base["url"], base["snapshot"] = "http://example.org/mid", {"element": apply(BASE["snapshot"]["element"],
                                                                               base["differential"]["element"])}
    sd = with_snapshot(profile({"id": "Thing.status", "path": "Thing.status", "fixedCode": "b"},
                               base="http://example.org/mid"), lambda u: base if "mid" in u else resolve(u))
    status = by_id(sd)["Thing.status"]
    assert status["fixedCode"] == "b" and "patternCode" not in status


@pytest.mark.parametrize("diff, why", [
    ({"id": "Thing.note", "path": "Thing.note", "min": 0}, "below"),
    ({"id": "Thing.note", "path": "Thing.note", "max": "*"}, "above"),
    ({"id": "Thing.colour", "path": "Thing.colour", "min": 1}, "not an element"),
])
def test_a_differential_that_widens_or_names_no_element_is_refused(diff: dict[str, Any], why: str) -> None:
    with pytest.raises(SnapshotError, match=why):
        with_snapshot(profile(diff), resolve)


def test_a_base_that_cannot_be_found_is_refused() -> None:
    with pytest.raises(SnapshotError, match="not in the package set"):
        with_snapshot(profile(base="http://example.org/nowhere"), resolve)


def test_an_id_less_element_is_found_by_path_and_slice_name() -> None:
    sd = with_snapshot(profile({"path": "Thing.code", "sliceName": "x", "min": 1}), resolve)
    assert by_id(sd)["Thing.code:x"]["min"] == 1
