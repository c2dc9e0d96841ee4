"""Code systems judged offline (validators/codes.py): SNOMED CT identifiers, SKS-D and ICPC-2.

Expected values come from the published rules, not from the code: the Verhoeff tables are rebuilt here from
the dihedral group D5 as symmetries of a pentagon (permutations of its vertices) and Verhoeff's position
permutation; concept ids are well-known SNOMED CT concepts; ICD-10 facts are WHO's (D54 is no category: D50-D53
are the nutritional anaemias, D55 starts the haemolytic ones); ICPC-2 facts are its structure (chapter Z has
no diagnoses; process codes 30-69 are in every chapter). The document cases break our own diagnosis card
(tests/builders.py) and assert code, severity and location.
"""

from __future__ import annotations

import json
from itertools import product
from typing import Any

import pytest

from kroniker.validators import codes
from kroniker.validators.findings import Finding, Report, Severity
from kroniker.validators.validate import Validator
from tests.builders import diagnosis_card
from tests.conftest import shared_path

SCT, SKS_D, ICPC_2 = "http://snomed.info/sct", "urn:oid:1.2.208.176.2.4.12", "urn:oid:1.2.208.176.2.31"
CONDITION = 3  # the Condition's entry in the diagnosis card
CODE = f"Bundle.entry[{CONDITION}].resource.code"

# -- Verhoeff, rebuilt independently ------------------------------------------------------------------------

Perm = tuple[int, ...]


def _compose(a: Perm, b: Perm) -> Perm:
    """a∘b: first b, then a (permutations of the pentagon's vertices 0-4)."""
    return tuple(a[b[v]] for v in range(5))


ROTATE: Perm = (1, 2, 3, 4, 0)  # r: vertex v → v+1
REFLECT: Perm = (0, 4, 3, 2, 1)  # s: vertex v → −v
IDENTITY: Perm = (0, 1, 2, 3, 4)


def _power(p: Perm, n: int) -> Perm:
    out = IDENTITY
    for _ in range(n):
        out = _compose(p, out)
    return out


# Verhoeff numbers D5's elements 0-4 as the rotations r^k and 5-9 as r^k∘s.
D5 = [_power(ROTATE, k) for k in range(5)] + [_compose(_power(ROTATE, k), REFLECT) for k in range(5)]
# Verhoeff's position permutation as published, in cycle notation: (0 1 5 8 9 4 2 7)(3 6).
SIGMA = {0: 1, 1: 5, 5: 8, 8: 9, 9: 4, 4: 2, 2: 7, 7: 0, 3: 6, 6: 3}


def _sigma_power(n: int, d: int) -> int:
    for _ in range(n):
        d = SIGMA[d]
    return d


def _independent_verhoeff_ok(number: str) -> bool:
    c = IDENTITY
    for i, d in enumerate(reversed(number)):
        c = _compose(c, D5[_sigma_power(i % 8, int(d))])
    return c == IDENTITY


def _with_check_digit(body: str) -> str:
    """body + the one digit that makes it pass (found by trying all ten with the independent check)."""
    digits = [d for d in "0123456789" if _independent_verhoeff_ok(body + d)]
    assert len(digits) == 1
    return body + digits[0]


def test_the_multiplication_table_is_d5_as_symmetries_of_a_pentagon() -> None:
    for j, k in product(range(10), repeat=2):
        assert D5[codes.MULTIPLY[j][k]] == _compose(D5[j], D5[k]), (j, k)
    # D5 is not commutative (that is what catches transpositions): r∘s ≠ s∘r.
    assert codes.MULTIPLY[1][5] != codes.MULTIPLY[5][1]


def test_the_position_permutations_are_powers_of_verhoeffs_sigma() -> None:
    for i in range(8):
        assert codes.PERMUTE[i] == tuple(_sigma_power(i, d) for d in range(10))
    assert tuple(_sigma_power(8, d) for d in range(10)) == tuple(range(10))  # σ has order 8


def test_the_inverse_undoes_each_element() -> None:
    for j in range(10):
        assert _compose(D5[j], D5[codes.INVERSE[j]]) == IDENTITY


def test_verhoeffs_own_example() -> None:
    # The algorithm's textbook example: 236 gets check digit 3.
    assert codes.verhoeff_valid("2363")
    assert codes.verhoeff_digit("236") == "3"
    assert not codes.verhoeff_valid("2364")


WELL_KNOWN_CONCEPTS = {
    "404684003": "Clinical finding",
    "279039007": "Low back pain",
    "22298006": "Myocardial infarction",
    "138875005": "SNOMED CT Concept (the root)",
    "160245001": "No current problems or disability",
    "554471000005108": "Danish module (long format, namespace 1000005)",
}


@pytest.mark.parametrize("sctid", sorted(WELL_KNOWN_CONCEPTS))
def test_well_known_concept_ids_pass(sctid: str) -> None:
    assert _independent_verhoeff_ok(sctid)
    assert codes.check(SCT, sctid) is None


@pytest.mark.parametrize("sctid", sorted(WELL_KNOWN_CONCEPTS))
def test_every_other_check_digit_fails(sctid: str) -> None:
    for d in "0123456789":
        if d != sctid[-1]:
            v = codes.check(SCT, sctid[:-1] + d)
            assert v is not None and v.code == "snomed-id" and v.message_key == "snomed-id-check-digit"


@pytest.mark.parametrize("sctid", sorted(WELL_KNOWN_CONCEPTS))
def test_every_swap_of_two_neighbouring_digits_fails(sctid: str) -> None:
    for i in range(len(sctid) - 1):
        swapped = sctid[:i] + sctid[i + 1] + sctid[i] + sctid[i + 2:]
        if swapped != sctid and swapped[0] != "0":
            assert codes.impossible(SCT, swapped), swapped


@pytest.mark.parametrize(("partition", "key"), [
    ("01", "snomed-id-not-concept"), ("02", "snomed-id-not-concept"),  # description, relationship
    ("11", "snomed-id-not-concept"), ("12", "snomed-id-not-concept"),  # the same, long format
    ("03", "snomed-id-partition"), ("05", "snomed-id-partition"), ("99", "snomed-id-partition"),
])
def test_a_concept_code_must_have_a_concept_partition(partition: str, key: str) -> None:
    sctid = _with_check_digit("1234567" + partition)  # long enough for a namespace in the long format
    v = codes.check(SCT, sctid)
    assert v is not None and v.message_key == key and v.params["partition"] == partition


def test_concept_partitions_pass() -> None:
    assert codes.check(SCT, _with_check_digit("123400")) is None  # short format, 7 digits
    assert codes.check(SCT, _with_check_digit("1" + "1000005" + "10")) is None  # long: item, namespace, 10


def test_the_long_format_needs_room_for_a_namespace() -> None:
    v = codes.check(SCT, _with_check_digit("123410"))  # partition 10 but only 4 digits before it
    assert v is not None and v.message_key == "snomed-id-namespace"


@pytest.mark.parametrize("code", ["A04", "12345", "0404684003", "1" * 19, "404684003 ", "4046-84003"])
def test_what_is_no_identifier_at_all(code: str) -> None:
    v = codes.check(SCT, code)
    assert v is not None and v.code == "snomed-id" and not v.possible


def test_an_expression_is_not_judged() -> None:
    # Post-coordinated expressions may stand as SNOMED CT codes; offline they stay "cannot be checked".
    assert codes.check(SCT, "22298006:363698007=74281007") is None


def test_a04_is_named_as_what_it_is() -> None:
    v = codes.check(SCT, "A04")
    assert v is not None and v.message_key == "code-other-systems"
    # A04 is ICPC-2's "weakness/tiredness general" and ICD-10's "other bacterial intestinal infections".
    assert {v.params["other"], v.params["other2"]} == {"@code-kind-icpc2", "@code-kind-icd10"}


# -- SKS-D ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["DM545", "DM54", "DE11", "DF329", "DJ449", "DC43"])
def test_sks_d_codes_that_are_who_codes_pass(code: str) -> None:
    assert codes.check(SKS_D, code) is None


@pytest.mark.parametrize(("code", "who"), [("DM545A", "M54.5"), ("DE785X", "E78.5"), ("DI109", "I10"),
                                           ("DS721+TUL1", "S72.1")])
def test_danish_sub_divisions_are_information_naming_the_who_code(code: str, who: str) -> None:
    v = codes.check(SKS_D, code)
    assert v is not None and v.possible and v.code == "sks-d-subdivision" and v.params["icd10"] == who


def test_an_sks_d_code_needs_an_icd10_category_that_exists() -> None:
    v = codes.check(SKS_D, "DD54")  # WHO ICD-10 has no D54
    assert v is not None and not v.possible and v.message_key == "sks-d-code-category"
    assert v.params["category"] == "D54"


@pytest.mark.parametrize("code", ["D?", "DD-", "D B001", "D93.00", "dm545", "?"])
def test_what_is_no_sks_d_code_at_all(code: str) -> None:
    v = codes.check(SKS_D, code)
    assert v is not None and not v.possible and v.code == "sks-d-code"


def test_an_icd10_code_under_sks_d_is_told_how_sks_writes_it() -> None:
    v = codes.check(SKS_D, "E78.5")
    assert v is not None and v.message_key == "sks-d-code-icd10" and v.params["sks"] == "DE785"


def test_an_icpc2_code_under_sks_d_is_named() -> None:
    v = codes.check(SKS_D, "T90")  # ICPC-2 "diabetes non-insulin dependent" (and ICD-10 T90, sequelae)
    assert v is not None and "@code-kind-icpc2" in (v.params.get("other"), v.params.get("other2"))


# -- ICPC-2 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["L03", "L84", "L86", "K86", "T90", "R95", "A98", "P76", "A04",
                                  "L30", "Z69", "D50"])  # the last three: process codes, in every chapter
def test_icpc2_codes_pass(code: str) -> None:
    assert codes.check(ICPC_2, code) is None


def test_the_code_list_has_its_shape() -> None:
    all_codes = codes.icpc2_codes()
    chapters = {c[0] for c in all_codes}
    assert chapters == set("ABDFHKLNPRSTUWXYZ")
    for chapter in chapters:
        assert {f"{chapter}{n}" for n in range(30, 70)} <= all_codes  # components 2-6
    assert not any(c.startswith("Z") and int(c[1:]) >= 70 for c in all_codes)  # social problems: no diagnoses
    assert not any(c[1:] == "00" for c in all_codes)


def test_a_number_a_chapter_does_not_have_is_no_icpc2_code() -> None:
    v = codes.check(ICPC_2, "L06")  # L05 flank, L07 jaw: no L06 (and no ICD-10 L06 either)
    assert v is not None and v.message_key == "icpc2-code-unknown"
    assert (v.params["chapter"], v.params["number"]) == ("L", "06")


def test_an_icd10_code_under_icpc2_is_named() -> None:
    v = codes.check(ICPC_2, "E78.5")
    assert v is not None and v.message_key == "code-other-system" and v.params["other"] == "@code-kind-icd10"


@pytest.mark.parametrize(("code", "kind"), [("DM545", "@code-kind-sks-d"), ("279039007", "@code-kind-sct"),
                                            ("Z70", "@code-kind-icd10")])
def test_codes_of_other_systems_under_icpc2_are_named(code: str, kind: str) -> None:
    v = codes.check(ICPC_2, code)
    assert v is not None and v.params["other"] == kind


@pytest.mark.parametrize("code", ["0", "?", "l03", "L3", "E"])
def test_what_is_no_icpc2_code_at_all(code: str) -> None:
    v = codes.check(ICPC_2, code)
    assert v is not None and v.message_key == "icpc2-code-syntax"


# -- in documents -----------------------------------------------------------------------------------------------

def _validate(validator: Validator, doc: dict[str, Any]) -> Report:
    return validator.validate(json.dumps(doc, ensure_ascii=False).encode("utf-8"))


def _card(*codings: dict[str, str]) -> dict[str, Any]:
    doc = diagnosis_card()
    doc["entry"][CONDITION]["resource"]["code"]["coding"] = list(codings)
    return doc


def _at(report: Report, location: str) -> list[Finding]:
    return [f for f in report.findings if f.location == location]


GOOD_SKS = {"system": SKS_D, "code": "DM545"}
GOOD_ICPC = {"system": ICPC_2, "code": "L03"}


def test_the_card_as_built_has_no_code_findings(validator: Validator) -> None:
    report = _validate(validator, diagnosis_card())
    assert report.valid
    assert not [f for f in report.findings if f.code in ("snomed-id", "sks-d-code", "icpc2-code",
                                                         "sks-d-subdivision")]


def test_a04_under_snomed_ct_in_the_required_slice_is_an_error(validator: Validator) -> None:
    report = _validate(validator, _card(GOOD_SKS, GOOD_ICPC, {"system": SCT, "code": "A04"}))
    found = _at(report, f"{CODE}.coding[2]")
    # One finding, the error (the warning of the plain Coding check is the same finding), and no
    # "cannot be checked offline": A04 cannot be a SNOMED CT identifier.
    assert [(f.code, f.severity) for f in found] == [("snomed-id", Severity.ERROR)]
    assert found[0].profile_element is not None and found[0].profile_element.endswith("SCTConditionCode")
    assert "A04 is an ICPC-2 code and an ICD-10 code, not a SNOMED CT identifier" in found[0].message("en")
    assert "A04 er en ICPC-2-kode og en ICD-10-kode, ikke et SNOMED CT-id" in found[0].message("da")
    assert not report.valid


def test_a_wrong_check_digit_in_the_required_slice_is_an_error(validator: Validator) -> None:
    report = _validate(validator, _card(GOOD_SKS, {"system": SCT, "code": "279039008"}))
    assert [(f.code, f.severity, f.message_key) for f in _at(report, f"{CODE}.coding[1]")] == [
        ("snomed-id", Severity.ERROR, "snomed-id-check-digit")]


def test_a_description_id_in_the_required_slice_is_an_error(validator: Validator) -> None:
    description = _with_check_digit("4046840" + "01")
    report = _validate(validator, _card(GOOD_SKS, {"system": SCT, "code": description}))
    assert [(f.code, f.severity, f.message_key) for f in _at(report, f"{CODE}.coding[1]")] == [
        ("snomed-id", Severity.ERROR, "snomed-id-not-concept")]


def test_a_concept_that_could_exist_stays_cannot_be_checked_offline(validator: Validator) -> None:
    report = _validate(validator, _card(GOOD_SKS, {"system": SCT, "code": "279039007"}))
    found = _at(report, f"{CODE}.coding[1]")
    assert [(f.code, f.severity, f.message_key) for f in found] == [
        ("binding", Severity.WARNING, "binding-unchecked")]
    assert report.valid


def test_icd10_under_icpc2_is_a_warning_naming_icd10(validator: Validator) -> None:
    report = _validate(validator, _card(GOOD_SKS, {"system": ICPC_2, "code": "E78.5"}))
    found = _at(report, f"{CODE}.coding[1]")
    assert [(f.code, f.severity) for f in found] == [("icpc2-code", Severity.WARNING)]
    assert "E78.5 is an ICD-10 code, not ICPC-2" in found[0].message("en")
    assert "E78.5 er en ICD-10-kode, ikke ICPC-2" in found[0].message("da")


def test_icpc2_under_sks_d_is_a_warning_naming_icpc2(validator: Validator) -> None:
    report = _validate(validator, _card({"system": SKS_D, "code": "L03"}, GOOD_ICPC))
    found = _at(report, f"{CODE}.coding[0]")
    assert [(f.code, f.severity) for f in found] == [("sks-d-code", Severity.WARNING)]
    assert "L03 is an ICPC-2 code" in found[0].message("en") and "not SKS-D" in found[0].message("en")


def test_a_danish_sub_division_is_information(validator: Validator) -> None:
    report = _validate(validator, _card({"system": SKS_D, "code": "DM545A"}, GOOD_ICPC))
    found = _at(report, f"{CODE}.coding[0]")
    assert [(f.code, f.severity) for f in found] == [("sks-d-subdivision", Severity.INFORMATION)]
    assert "sub-division of ICD-10 M54.5" in found[0].message("en")
    assert report.valid


def test_an_sks_d_category_that_does_not_exist_is_a_warning(validator: Validator) -> None:
    report = _validate(validator, _card({"system": SKS_D, "code": "DD54"}, GOOD_ICPC))
    assert [(f.code, f.severity) for f in _at(report, f"{CODE}.coding[0]")] == [("sks-d-code", Severity.WARNING)]


def test_a_broken_snomed_id_outside_a_required_binding_is_a_warning(validator: Validator) -> None:
    doc = diagnosis_card()
    doc["entry"][CONDITION]["resource"]["category"][0]["coding"][0]["code"] = "15240008"  # 15240007 Current
    report = _validate(validator, doc)
    where = f"Bundle.entry[{CONDITION}].resource.category[0].coding[0]"
    assert [(f.code, f.severity) for f in _at(report, where) if f.code == "snomed-id"] == [
        ("snomed-id", Severity.WARNING)]


def test_medcoms_lung_body_site_fails_its_check_digit(validator: Validator) -> None:
    # MedCom's live-test examples give "Lunger" as SNOMED CT 4011000179103, which fails Verhoeff's check:
    # a warning (bodySite has no required binding), and the example keeps its known verdict otherwise.
    path = shared_path("medcom-examples", "conditionlist", "conditionlist-testexample-livetest__TestExample_R1-2L.json")
    assert not _independent_verhoeff_ok("4011000179103")
    report = validator.validate(path)
    found = _at(report, "Bundle.entry[5].resource.bodySite[0].coding[0]")
    assert [(f.code, f.severity) for f in found] == [("snomed-id", Severity.WARNING)]
