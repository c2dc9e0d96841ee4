"""The base structure comes from fhir.resources, which is R4B; kroniker sets it back to R4
(docs/r4b-vs-r4.md). These tests hold it to R4: to the R4 snapshots in MedCom's packages and to R4 facts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kroniker.validators import base
from kroniker.validators.packages import PackageCache
from kroniker.validators.validate import Validator
from tests.builders import shared_note

DOCUMENT_TYPES = ["Bundle", "Composition", "Observation", "Patient", "Organization", "Practitioner",
                  "PractitionerRole", "Condition", "DocumentReference"]


def _snapshot_children(cache: PackageCache, rtype: str) -> dict[str, tuple[int, str]]:
    """Top-level elements of an R4 resource as a MedCom/DK profile's snapshot lists them: name → (min, max)."""
    for pkg in cache.installed():
        for entry in pkg.index:
            if entry.get("resourceType") == "StructureDefinition" and entry.get("type") == rtype:
                sd = json.loads(entry["path"].read_text(encoding="utf-8"))
                if sd.get("kind") != "resource" or not sd.get("snapshot"):
                    continue
                out = {}
                for e in sd["snapshot"]["element"]:
                    parts = e["path"].split(".")
                    if len(parts) == 2 and ":" not in e.get("id", ""):
                        out[parts[1]] = (e["base"]["min"], e["base"]["max"])
                return out
    raise LookupError(rtype)


@pytest.mark.parametrize("rtype", DOCUMENT_TYPES)
def test_base_elements_match_the_r4_snapshots(rtype: str, package_cache: PackageCache) -> None:
    r4 = _snapshot_children(package_cache, rtype)
    struct = base.base_structure(rtype)
    assert struct is not None
    ours = {name: (el.min, "*" if el.base_is_list or el.max is None else str(el.max))
            for name, el in struct.root.children.items()}
    assert set(ours) == set(r4), \
        f"{rtype}: only R4B {sorted(set(ours) - set(r4))}, only R4 {sorted(set(r4) - set(ours))}"
    # The base cardinality (ElementDefinition.base) of every element is R4's.
    assert ours == r4


def test_resource_types_are_r4() -> None:
    types = base.resource_types()
    assert {"Composition", "Observation", "MedicinalProduct", "EffectEvidenceSynthesis"} <= types  # R4 has these
    assert not {"Citation", "SubscriptionTopic", "ClinicalUseDefinition"} & types  # added in R4B


def test_extension_value_types_are_r4() -> None:
    ext = base.base_structure("Extension")
    assert ext is not None
    codes = set(ext.root.children["value[x]"].type_codes)
    assert "Meta" in codes  # R4's Extension.value[x] allows Meta …
    assert not {"CodeableReference", "RatioRange"} & codes  # … R4B's additions are not R4


def _with_unknown_extension(value: dict[str, Any]) -> bytes:
    doc = shared_note()
    doc["entry"][2]["resource"]["extension"] = [{"url": "https://kroniker.example/ext/test", **value}]
    return json.dumps(doc).encode()


def test_an_r4b_only_extension_value_is_refused(validator: Validator) -> None:
    report = validator.validate(_with_unknown_extension({"valueCodeableReference": {"concept": {"text": "x"}}}))
    errors = [f for f in report.errors() if f.location.startswith("Bundle.entry[2].resource.extension[0]")]
    assert errors, "valueCodeableReference is R4B, not R4"


def test_an_r4_extension_value_is_accepted_structurally(validator: Validator) -> None:
    report = validator.validate(_with_unknown_extension({"valueMeta": {"versionId": "1"}}))
    at_ext = [f for f in report.findings if f.location.startswith("Bundle.entry[2].resource.extension[0]")]
    assert [f.code for f in at_ext] == ["extension-unknown"]  # a warning that it cannot be checked, no error


def test_incomplete_base_code_lists_are_completed_from_profiles() -> None:
    # fhir.resources marks an incomplete list with "+" (Observation.status); kroniker's own R4 value set completes it.
    from kroniker.validators.terminology import Membership, Terminology

    term = Terminology(lambda url: None)
    exp = term.expand("http://hl7.org/fhir/ValueSet/observation-status|4.0.1", base.element_enum("Observation.status"))
    assert exp.check_code("corrected") is Membership.IN
    assert exp.check_code("bogus") is Membership.NOT_IN
