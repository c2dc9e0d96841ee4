"""The care package as computable content: kroniker's FHIR packages built and installed, responses checked
against their Questionnaire, scored by the Questionnaire's own expressions, triaged by the package's rule set.

Expected scores come from the instruments' published rules, re-implemented here independently of the package:
STarT Back (Keele; Hill et al. 2008): total = the positive items 1-9, item 9 positive for "very much" or
"extremely"; psychosocial subscore = the last five items (fear, anxiety, catastrophising, depression,
bothersomeness: items 5-9 of the tool); total <= 3 low, else subscore >= 4 high, else medium.
ODI 2.1a (Fairbank & Pynsent 2000): sections scored 0-5; percent = sum / (5 x answered sections) x 100,
not scored with more than one section missing (issue 11); bands 0-20 minimal, 21-40 moderate, 41-60 severe,
61-80 crippling, 81-100 bed-bound.
"""

from __future__ import annotations

import copy
import itertools
import json
import tarfile
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from kroniker.clinical import Content, decide, score, triage
from kroniker.clinical.build import build, source_folders
from kroniker.validators.packages import PackageCache
from tests.clinical_support import (
    BOTHERSOME,
    LBP,
    PATIENT_Q,
    assessment,
    find_item,
    install_packages,
    patient_response,
    run,
)

FUT_FINDINGS = "http://ehealth.sundhed.dk/cs/clinicalimpression-finding-codes"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clinical")
    install_packages(root / "cache", root / "dist")
    return root / "cache"


@pytest.fixture(scope="module")
def content(cache: Path) -> Content:
    return Content(PackageCache(cache))


def codes(findings: Any) -> list[str]:
    return [f.code for f in findings]


# -- the package -------------------------------------------------------------------------------------------

def test_build_makes_a_fhir_npm_package_with_manifest_index_and_resources(tmp_path: Path) -> None:
    lbp = next(p for p in source_folders() if p.name == "lbp")
    built = build(lbp, tmp_path)
    with tarfile.open(built.path) as tf:
        names = tf.getnames()
        manifest = json.loads(tf.extractfile("package/package.json").read())  # type: ignore[union-attr]
        index = json.loads(tf.extractfile("package/.index.json").read())  # type: ignore[union-attr]
        library = json.loads(tf.extractfile("package/Library-lbp-triage.json").read())  # type: ignore[union-attr]
    assert all(n.startswith("package/") for n in names)
    assert (manifest["name"], manifest["version"], manifest["canonical"]) == ("kroniker.lbp", "0.1.0", LBP)
    # The package note profile is built on MedCom's Shared Notes 1.0.0 (issue 12).
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", "kroniker.core": "0.1.0",
                                        "medcom.fhir.dk.notes": "1.0.0"}
    files = {e["filename"]: e for e in index["files"]}
    assert files["Questionnaire-lbp-patient.json"]["url"] == PATIENT_Q.split("|")[0]
    assert {e["resourceType"] for e in index["files"]} == {"CodeSystem", "Questionnaire", "Library",
                                                            "StructureDefinition", "ValueSet"}
    assert f"package/{'Library-lbp-triage.rules.json'}" not in names  # embedded in the Library, not a stray file
    assert library["content"][0]["data"] and "url" not in library["content"][0]


def test_build_is_reproducible(tmp_path: Path) -> None:
    lbp = next(p for p in source_folders() if p.name == "lbp")
    first = build(lbp, tmp_path / "a").path.read_bytes()
    assert build(lbp, tmp_path / "b").path.read_bytes() == first


def test_the_cli_installs_the_packages_into_the_cache_beside_medcoms(cache: Path) -> None:
    code, out, _ = run("packages", "list", "--cache", str(cache), "--format", "json")
    assert code == 0
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["kroniker.lbp"]["version"] == "0.1.0"
    # The base (read from fhir.resources), and MedCom's Shared Notes, which this cache does not hold.
    assert listed["kroniker.lbp"]["missing"] == ["hl7.fhir.r4.core#4.0.1", "medcom.fhir.dk.notes#1.0.0"]


def test_the_engines_package_set_resolves_the_packages_code_systems(cache: Path) -> None:
    from kroniker.validators.packages import PackageSet

    pc = PackageCache(cache)
    pkg = pc.get("kroniker.lbp", "0.1.0")
    assert pkg is not None
    resolved = PackageSet(pc, pkg).resolve(f"{LBP}/CodeSystem/startback")
    assert resolved is not None and resolved["concept"][0]["code"] == "1"
    assert PackageSet(pc, pkg).resolve("https://kroniker.example/fhir/CodeSystem/triage-decision") is not None


def test_a_broken_source_is_refused_with_the_file_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "package.json").write_text(json.dumps({"name": "x.y", "version": "1.0.0",
                                                  "canonical": "https://x.example/fhir"}))
    (src / "CodeSystem-a.json").write_text(json.dumps({"resourceType": "CodeSystem", "id": "a",
                                                       "url": "https://other.example/CodeSystem/a",
                                                       "version": "1.0.0"}))
    code, _, err = run("package", "build", str(src), "--out", str(tmp_path / "out"))
    assert code == 2 and "CodeSystem-a.json" in err and "canonical" in err and "Traceback" not in err


# -- STarT Back: every answer combination ----------------------------------------------------------------

def published_startback(agreed: tuple[bool, ...], bothersome: str) -> tuple[int, int, str]:
    item9 = bothersome in ("very-much", "extremely")
    total = sum(agreed) + item9
    psychosocial = sum(agreed[4:8]) + item9
    risk = "low" if total <= 3 else "high" if psychosocial >= 4 else "medium"
    return total, psychosocial, risk


def test_startback_agrees_with_the_published_rule_on_all_2_to_the_8_times_5_combinations(content: Content) -> None:
    base = patient_response()
    seen = 0
    for agreed in itertools.product((False, True), repeat=8):
        for bothersome in BOTHERSOME:
            response = copy.deepcopy(base)
            for i, a in enumerate(agreed, 1):
                find_item(response, f"startback.{i}")["answer"][0]["valueCoding"]["code"] = "agree" if a else "disagree"
            find_item(response, "startback.9")["answer"][0]["valueCoding"]["code"] = bothersome
            result = score(response, content)
            assert result.scores is not None, codes(result.findings)
            got = (result.scores["startback.total"], result.scores["startback.psychosocial"],
                   result.scores["startback.risk"])
            assert got == published_startback(agreed, bothersome), (agreed, bothersome)
            seen += 1
    assert seen == 2 ** 8 * 5


# -- ODI: zero, one and two sections missing ---------------------------------------------------------------

def published_odi(sections: list[int | None]) -> tuple[float | None, str | None]:
    answered = [s for s in sections if s is not None]
    if len(sections) - len(answered) > 1:
        return None, None
    exact = Fraction(sum(answered) * 100, 5 * len(answered))
    percent = Decimal(exact.numerator) / Decimal(exact.denominator)
    shown = float(percent.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    band = ("minimal" if shown <= 20 else "moderate" if shown <= 40 else "severe" if shown <= 60
            else "crippling" if shown <= 80 else "bed-bound")
    return shown, band


ODI_VALUES = [[0] * 10, [5] * 10, [1, 2, 3, 4, 5, 0, 1, 2, 3, 4], [3, 3, 2, 4, 1, 0, 2, 5, 1, 2],
              [2, 1, 3, 2, 2, 1, 1, 4, 2, 3], [4, 4, 4, 5, 3, 4, 5, 2, 4, 4]]


@pytest.mark.parametrize("missing", [0, 1, 2])
def test_odi_agrees_with_the_published_rule_with_missing_sections(content: Content, missing: int) -> None:
    for values in ODI_VALUES:
        for gone in itertools.combinations(range(10), missing):
            sections: list[int | None] = [None if i in gone else v for i, v in enumerate(values)]
            result = score(patient_response(odi=sections), content)
            assert result.scores is not None, codes(result.findings)
            expected = published_odi(sections)
            assert (result.scores["odi.percent"], result.scores["odi.band"]) == expected, sections
            if missing == 2:
                assert "QR-SCORE-MISSING" in codes(result.findings)
                reason = next(f for f in result.findings if f.params.get("score") == "odi.percent")
                assert "more than one" in reason.params["reason_en"]
            else:
                assert "QR-SCORE-MISSING" not in codes(result.findings)


def test_health_literacy_screen(content: Content) -> None:
    # SILS (Morris 2006): 1 never … 5 always; > 2 (sometimes or more) is possible limited literacy.
    for sils, limited in (("never", False), ("rarely", False), ("sometimes", True), ("often", True), ("always", True)):
        s = score(patient_response(sils=sils, chew=None), content).scores
        assert s is not None and s["hl.category"] == ("limited" if limited else "adequate"), sils
        assert s["hl.chew"] is None
    s = score(patient_response(sils="never", chew="conf-somewhat"), content).scores
    assert s is not None and (s["hl.sils"], s["hl.chew"], s["hl.category"]) == (1, 2, "limited")


# -- responses checked against their Questionnaire ---------------------------------------------------------

def broken(change: str) -> dict[str, Any]:
    r = patient_response()
    if change == "unknown-item":
        r["item"][1]["item"].append({"linkId": "startback.10", "answer": [{"valueInteger": 1}]})
    elif change == "required":
        r["item"][1]["item"] = [i for i in r["item"][1]["item"] if i["linkId"] != "startback.5"]
    elif change == "option":
        find_item(r, "startback.3")["answer"][0]["valueCoding"]["code"] = "maybe"
    elif change == "type":
        find_item(r, "startback.3")["answer"] = [{"valueBoolean": True}]
    elif change == "repeats":
        find_item(r, "startback.3")["answer"] *= 2
    elif change == "status":
        r["status"] = "in-progress"
    elif change == "unknown-questionnaire":
        r["questionnaire"] = "https://kroniker.example/fhir/lbp/Questionnaire/nothing|0.1.0"
    elif change == "version":
        r["questionnaire"] = f"{LBP}/Questionnaire/lbp-patient|9.0.0"
    elif change == "no-questionnaire":
        del r["questionnaire"]
    return r


@pytest.mark.parametrize(("change", "code"), [
    ("unknown-item", "QR-ITEM-UNKNOWN"), ("required", "QR-ITEM-REQUIRED"), ("option", "QR-ANSWER-OPTION"),
    ("type", "QR-ANSWER-TYPE"), ("repeats", "QR-ITEM-REPEATS"), ("status", "QR-STATUS"),
    ("unknown-questionnaire", "QR-QUESTIONNAIRE-UNKNOWN"), ("version", "QR-QUESTIONNAIRE-VERSION"),
    ("no-questionnaire", "QR-QUESTIONNAIRE-MISSING")])
def test_an_invalid_response_is_refused_with_a_finding_and_not_scored(content: Content, change: str,
                                                                        code: str) -> None:
    result = score(broken(change), content)
    assert code in codes(result.findings)
    assert result.scores is None and result.observations == []


def test_a_response_without_a_version_is_scored_by_the_highest_with_a_warning(content: Content) -> None:
    r = patient_response(questionnaire=PATIENT_Q.split("|")[0])
    result = score(r, content)
    assert codes(result.findings) == ["QR-QUESTIONNAIRE-NO-VERSION"] and result.valid and result.scores


def test_a_vendors_own_score_that_differs_is_reported(content: Content) -> None:
    r = patient_response(startback=(True,) * 8, bothersome="extremely")
    r["item"][1]["item"].append({"linkId": "startback.total", "answer": [{"valueInteger": 8}]})
    result = score(r, content)
    assert result.valid and result.scores and result.scores["startback.total"] == 9
    differs = [f for f in result.findings if f.code == "QR-SCORE-DIFFERS"]
    assert [(f.params["found"], f.params["expected"]) for f in differs] == [(8, 9)]


def test_scores_are_observations_derived_from_the_response(content: Content) -> None:
    result = score(patient_response(startback=(True,) * 4 + (False,) * 4), content)
    by_code = {o["code"]["coding"][0]["code"]: o for o in result.observations}
    total = by_code["total"]
    assert total["valueInteger"] == 4 and total["derivedFrom"] == [{"reference": "QuestionnaireResponse/patient-1"}]
    assert total["subject"]["identifier"]["value"] == "3001749995" and total["status"] == "final"
    assert total["effectiveDateTime"] == "2026-11-03T10:15:00+01:00"
    assert by_code["percent"]["valueQuantity"] == {"value": 20.0, "unit": "%", "system": "http://unitsofmeasure.org",
                                                   "code": "%"}


# -- the CLI ------------------------------------------------------------------------------------------------

def test_score_cli_prints_one_object_per_input_in_input_order(cache: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "b-good.json", tmp_path / "a-bad.json"
    good.write_text(json.dumps(patient_response(startback=(True,) * 4 + (False,) * 4, bothersome="extremely")))
    bad.write_text(json.dumps(broken("option")))
    code, out, _ = run("questionnaire", "score", str(good), str(bad), "--cache", str(cache), "--lang", "da")
    results = json.loads(out)
    assert code == 1
    assert [r["source"] for r in results] == [str(good), str(bad)]
    assert results[0]["questionnaire"] == PATIENT_Q
    assert results[0]["scores"]["startback.total"] == 5 and results[0]["scores"]["startback.risk"] == "medium"
    assert results[1]["scores"] is None
    assert results[1]["findings"][0]["code"] == "QR-ANSWER-OPTION" and "svarmulighederne" in \
        results[1]["findings"][0]["message"]


def test_score_cli_exit_status_as_validate(cache: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(patient_response()))
    assert run("questionnaire", "score", str(good), "--cache", str(cache))[0] == 0
    (tmp_path / "garbage.json").write_text("{not json")
    code, out, err = run("questionnaire", "score", str(tmp_path / "garbage.json"), "--cache", str(cache))
    assert code == 2 and json.loads(out)[0]["findings"][0]["code"] == "json-syntax" and "Traceback" not in err
    code, out, _ = run("questionnaire", "score", str(tmp_path), "--cache", str(cache))
    assert code == 2 and len(json.loads(out)) == 2


def test_every_message_has_danish_and_english() -> None:
    from kroniker.clinical.messages import catalogue

    assert set(catalogue("da")) == set(catalogue("en"))
    source = "".join(p.read_text() for p in Path(__file__).resolve().parents[1].joinpath("clinical").glob("*.py"))
    import re

    emitted = set(re.findall(r'"((?:QR|TRIAGE)-[A-Z-]+)"', source))
    assert emitted and emitted <= set(catalogue("da"))


# -- triage ------------------------------------------------------------------------------------------------

def fired(result: Any) -> list[str]:
    return [f.rule["id"] for f in result.fired]


def test_high_startback_and_limited_literacy_is_red_and_says_why(content: Content) -> None:
    patient = patient_response(startback=(True, False, True, False, True, True, True, False), bothersome="very-much",
                               sils="often")
    result = triage(patient, assessment(), content)
    assert result.colour == "red"
    assert "high-risk-limited-literacy" in fired(result)
    ci = result.resource
    assert ci is not None
    assert ci["finding"][0]["itemCodeableConcept"]["coding"][0] == {"system": FUT_FINDINGS, "code": "red"}
    assert ci["code"]["coding"][0]["code"] == "TriagingResult"
    params = ci["contained"][0]["parameter"]
    assert params[0] == {"name": "library", "valueCanonical": f"{LBP}/Library/lbp-triage|0.1.0"}
    assert {"name": "provisional", "valueBoolean": True} in params
    inputs = [p for p in params if p["name"] == "input"]
    assert [p["part"][1]["valueReference"] for p in inputs] == [{"reference": "QuestionnaireResponse/patient-1"},
                                                                {"reference": "QuestionnaireResponse/assessment-1"}]
    basis = [e for e in ci["extension"] if e["url"].endswith("finding-basis")]
    links = {x["valueString"] for b in basis for x in b["extension"] if x["url"] == "linkId"}
    assert {"startback.risk", "hl.category"} <= links
    assert "Foreløbig" in ci["note"][0]["text"]


def test_low_risk_and_low_need_is_green(content: Content) -> None:
    result = triage(patient_response(), assessment(need="need-low"), content)
    assert result.colour == "green" and set(fired(result)) == {"startback-low", "need-low"}


def test_red_flags_are_red_whatever_the_patient_answered(content: Content) -> None:
    assert triage(patient_response(), assessment(red_flags="yes", need="need-low"), content).colour == "red"


def test_an_invalid_input_gives_no_triage(content: Content) -> None:
    result = triage(broken("required"), assessment(), content)
    assert result.resource is None and "QR-ITEM-REQUIRED" in codes(result.findings)
    assert result.findings[0].location.startswith("patient: ")


def test_responses_about_two_patients_are_not_triaged_together(content: Content) -> None:
    result = triage(patient_response(), assessment(cpr="0101010101"), content)
    assert result.resource is None and "TRIAGE-SUBJECT-DIFFERS" in codes(result.findings)


def test_swapped_inputs_are_refused(content: Content) -> None:
    result = triage(assessment(), patient_response(), content)
    assert result.resource is None and "TRIAGE-QUESTIONNAIRE" in codes(result.findings)


def test_the_gp_changes_the_colour_with_a_reason_and_the_suggestion_stays(content: Content) -> None:
    suggestion = triage(patient_response(startback=(True,) * 4 + (False,) * 4), assessment(), content)
    assert suggestion.colour == "yellow" and suggestion.resource is not None
    refused = decide(suggestion.resource, "green")
    assert refused.resource is None and codes(refused.findings) == ["TRIAGE-REASON-MISSING"]
    decision = decide(suggestion.resource, "green", reason="Kendt forløb, klarer sig selv")
    ci = decision.resource
    assert ci is not None
    assert ci["previous"] == {"reference": f"ClinicalImpression/{suggestion.resource['id']}"}
    assert ci["finding"][0]["itemCodeableConcept"]["coding"][0]["code"] == "green"
    kept = next(e for e in ci["extension"] if e["url"].endswith("triage-suggested-finding"))
    assert kept["valueCodeableConcept"]["coding"][0]["code"] == "yellow"
    assert ci["note"] == [{"text": "Kendt forløb, klarer sig selv"}]
    decided = next(e for e in ci["extension"] if e["url"].endswith("clinicalimpression-decision"))
    assert decided["valueCodeableConcept"]["coding"][0]["code"] == "changed"


def test_the_gp_approves_without_a_reason(content: Content) -> None:
    suggestion = triage(patient_response(), assessment(), content)
    decision = decide(suggestion.resource, str(suggestion.colour))
    assert decision.resource is not None
    codings = next(e for e in decision.resource["extension"]
                   if e["url"].endswith("clinicalimpression-decision"))["valueCodeableConcept"]["coding"]
    assert {"system": "http://ehealth.sundhed.dk/cs/clinicalimpression-decision-codes", "code": "approved",
            "display": "Approved"} in codings


def test_triage_cli_and_decide_cli(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(patient_response(startback=(True,) * 4 + (False,) * 4)))
    (tmp_path / "a.json").write_text(json.dumps(assessment()))
    code, out, _ = run("triage", "--patient-response", str(tmp_path / "r.json"), "--assessment",
                       str(tmp_path / "a.json"), "--cache", str(cache))
    assert code == 0 and json.loads(out)["resourceType"] == "ClinicalImpression"
    (tmp_path / "s.json").write_text(out)
    code, text, _ = run("triage", "--patient-response", str(tmp_path / "r.json"), "--assessment",
                        str(tmp_path / "a.json"), "--cache", str(cache), "--format", "text", "--lang", "da")
    assert code == 0 and "Foreslået farve: gul" in text and "startback-medium" in text and "FORELØBIG" in text
    code, _, err = run("triage", "decide", "--suggestion", str(tmp_path / "s.json"), "--colour", "green")
    assert code == 1 and "TRIAGE-REASON-MISSING" in err
    code, out, _ = run("triage", "decide", "--suggestion", str(tmp_path / "s.json"), "--colour", "green",
                       "--reason", "Klarer sig selv")
    assert code == 0 and json.loads(out)["previous"]["reference"].startswith("ClinicalImpression/")


# -- licensed wording --------------------------------------------------------------------------------------

def test_load_licensed_replaces_texts_and_keeps_linkids_codes_and_weights(cache: Path, content: Content,
                                                                          tmp_path: Path) -> None:
    licensed = {"questionnaire": PATIENT_Q, "licence": "STarT Back © Keele University; licensed to the clinic",
                "items": {"startback.1": {"text": "LICENSED 1", "options": {"agree": "LA", "disagree": "LD"}}}}
    (tmp_path / "lic.json").write_text(json.dumps(licensed))
    code, out, err = run("questionnaire", "load-licensed", str(tmp_path / "lic.json"), "--cache", str(cache))
    assert code == 0, err
    loaded = json.loads(out)
    original = content.find(PATIENT_Q)
    assert original is not None
    item = next(i for g in loaded["item"] for i in g.get("item", []) if i["linkId"] == "startback.1")
    orig = next(i for g in original.resource["item"] for i in g.get("item", []) if i["linkId"] == "startback.1")
    assert item["text"] == "LICENSED 1" and item["answerOption"][0]["valueCoding"]["display"] == "LA"
    assert item["code"] == orig["code"]
    assert [o["extension"] for o in item["answerOption"]] == [o["extension"] for o in orig["answerOption"]]
    assert loaded["copyright"].startswith("STarT Back ©") and loaded["url"] == original.resource["url"]
    licensed["items"] = {"startback.99": {"text": "x"}}
    (tmp_path / "lic.json").write_text(json.dumps(licensed))
    code, out, err = run("questionnaire", "load-licensed", str(tmp_path / "lic.json"), "--cache", str(cache))
    assert code == 2 and out == "" and "startback.99" in err


# -- nothing is specific to back pain ----------------------------------------------------------------------

def test_another_package_scores_and_triages_with_no_new_code(tmp_path: Path) -> None:
    """A made-up COPD-like package: a 0-40 sum score (CAT-like) and a rule on it, as data only."""
    src = tmp_path / "kol"
    src.mkdir()
    base = "https://kroniker.example/fhir/test-kol"
    (src / "package.json").write_text(json.dumps({"name": "kroniker.test-kol", "version": "0.0.1",
                                                  "canonical": base, "dependencies": {}}))
    ov = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
    options = [{"valueCoding": {"system": f"{base}/cs", "code": str(v)}, "extension": [{"url": ov, "valueDecimal": v}]}
               for v in range(6)]
    items = [{"linkId": f"cat.{i}", "type": "choice", "required": True, "answerOption": options} for i in range(1, 9)]
    items.append({"linkId": "cat.score", "type": "integer", "readOnly": True, "code": [{"code": "MCS88137"}],
                  "extension": [{"url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-"
                                 "calculatedExpression", "valueExpression": {
                                     "language": "text/fhirpath",
                                     "expression": "%resource.repeat(item).where(linkId.startsWith('cat.') and "
                                                   "linkId != 'cat.score').answer.value.weight().sum()"}}]})
    items.append({"linkId": "gp.note", "type": "string",
                  "enableWhen": [{"question": "cat.1", "operator": "=", "answerCoding": {"code": "5"}}]})
    (src / "Questionnaire-cat.json").write_text(json.dumps({
        "resourceType": "Questionnaire", "id": "cat", "url": f"{base}/Questionnaire/cat", "version": "0.0.1",
        "status": "draft", "item": items}))
    (src / "rules.json").write_text(json.dumps({"provisional": True, "rules": [
        {"id": "cat-high", "significance": "red",
         "when": [{"linkId": "cat.score", "operator": ">=", "valueInteger": 30}]},
        {"id": "cat-low", "significance": "green",
         "when": [{"linkId": "cat.score", "operator": "<", "valueInteger": 10}]}]}))
    (src / "Library-rules.json").write_text(json.dumps({
        "resourceType": "Library", "id": "rules", "url": f"{base}/Library/rules", "version": "0.0.1",
        "status": "draft", "type": {"coding": [{"code": "logic-library"}]},
        "relatedArtifact": [{"type": "depends-on", "resource": f"{base}/Questionnaire/cat|0.0.1"}],
        "content": [{"contentType": "application/json", "url": "rules.json"}]}))
    install_packages(tmp_path / "cache", tmp_path / "dist", [src])
    content = Content(PackageCache(tmp_path / "cache"))

    def answers(values: list[int]) -> dict[str, Any]:
        return {"resourceType": "QuestionnaireResponse", "id": "k", "questionnaire": f"{base}/Questionnaire/cat|0.0.1",
                "status": "completed", "item": [{"linkId": f"cat.{i}", "answer": [
                    {"valueCoding": {"system": f"{base}/cs", "code": str(v)}}]} for i, v in enumerate(values, 1)]}

    high = answers([5, 4, 4, 4, 4, 4, 4, 4])
    result = score(high, content)
    assert result.scores == {"cat.score": 33}
    assert triage(high, answers([5] * 8), content).colour == "red"
    assert triage(answers([1] * 8), answers([1] * 8), content).colour == "green"
    # enableWhen: the note is only asked when item 1 is 5
    low = answers([1] * 8)
    low["item"].append({"linkId": "gp.note", "answer": [{"valueString": "x"}]})
    assert "QR-ITEM-DISABLED" in codes(score(low, content).findings)
    high["item"].append({"linkId": "gp.note", "answer": [{"valueString": "x"}]})
    assert score(high, content).valid


def test_a_broken_expression_in_a_package_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    src = tmp_path / "broken"
    src.mkdir()
    base = "https://kroniker.example/fhir/test-broken"
    (src / "package.json").write_text(json.dumps({"name": "kroniker.test-broken", "version": "0.0.1",
                                                  "canonical": base}))
    calc = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
    (src / "Questionnaire-q.json").write_text(json.dumps({
        "resourceType": "Questionnaire", "id": "q", "url": f"{base}/Questionnaire/q", "version": "0.0.1",
        "status": "draft", "item": [{"linkId": "n", "type": "integer"}, {
            "linkId": "s", "type": "integer", "readOnly": True,
            "extension": [{"url": calc, "valueExpression": {"language": "text/fhirpath",
                                                            "expression": "nosuchfunction()"}}]}]}))
    install_packages(tmp_path / "cache", tmp_path / "dist", [src])
    response = {"resourceType": "QuestionnaireResponse", "questionnaire": f"{base}/Questionnaire/q|0.0.1",
                "status": "completed", "item": [{"linkId": "n", "answer": [{"valueInteger": 3}]}]}
    (tmp_path / "r.json").write_text(json.dumps(response))
    code, out, err = run("questionnaire", "score", str(tmp_path / "r.json"), "--cache", str(tmp_path / "cache"))
    assert code == 1 and "Traceback" not in err
    assert json.loads(out)[0]["findings"][0]["code"] == "QR-SCORE-ERROR"


def test_the_examples_shipped_in_the_package_score_and_triage(cache: Path, content: Content) -> None:
    pkg = PackageCache(cache).get("kroniker.lbp", "0.1.0")
    assert pkg is not None
    examples = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in pkg.examples()}
    patient, gp = examples["patient-response.json"], examples["gp-assessment.json"]
    scores = score(patient, content).scores
    # STarT items 1, 3, 5, 6, 7 agreed and item 9 "very much": 6, subscore 4 (items 5-7, 9): high.
    # ODI 2+1+3+2+2+1+1+2+3 = 17 over 9 sections: 17/45 = 37.8 %. SILS "often" (4 > 2): limited.
    assert scores is not None
    assert (scores["startback.total"], scores["startback.psychosocial"], scores["startback.risk"]) == (6, 4, "high")
    assert (scores["odi.percent"], scores["hl.category"]) == (37.8, "limited")
    assert triage(patient, gp, content).colour == "red"


HLQ_Q = f"{LBP}/Questionnaire/lbp-hlq|0.1.0"


def hlq_response(scale6: list[int], scale9: list[int]) -> dict[str, Any]:
    from tests.clinical_support import ANSWERS

    return {"resourceType": "QuestionnaireResponse", "questionnaire": HLQ_Q, "status": "completed", "item": [
        {"linkId": f"hlq.{s}", "item": [{"linkId": f"hlq.{s}.{i}", "answer": [
            {"valueCoding": {"system": ANSWERS, "code": f"difficulty-{v}"}}]} for i, v in enumerate(values, 1)]}
        for s, values in ((6, scale6), (9, scale9))]}


@pytest.mark.parametrize(("scale6", "scale9"), [([1, 2, 3, 4, 5], [2, 2, 3, 3, 3]), ([5] * 5, [1] * 5),
                                                ([4, 4, 5, 3, 4], [2, 3, 1, 1, 2])])
def test_hlq_scales_are_the_unweighted_mean_of_their_items(content: Content, scale6: list[int],
                                                           scale9: list[int]) -> None:
    # HLQ (Osborne et al. 2013): scales 6-9 on a 1-5 difficulty scale; a scale's score is the mean of its items.
    def mean(values: list[int]) -> float:
        return float((Decimal(sum(values)) / len(values)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))

    result = score(hlq_response(scale6, scale9), content)
    assert result.scores == {"hl.hlq6": mean(scale6), "hl.hlq9": mean(scale9)}


def test_the_hlq_form_ships_no_wording_and_takes_the_licensed_text(cache: Path, content: Content,
                                                                   tmp_path: Path) -> None:
    hlq = content.find(HLQ_Q)
    assert hlq is not None
    texts = [i["text"] for g in hlq.resource["item"] for i in g["item"] if not i.get("readOnly")]
    assert len(texts) == 10 and all("pladsholder" in t for t in texts)
    licensed = {"questionnaire": HLQ_Q, "licence": "HLQ © Deakin University, licensed to Lægerne i Kronikergården",
                "items": {f"hlq.{s}.{i}": {"text": f"Licenseret tekst {s}.{i}"} for s in (6, 9) for i in range(1, 6)}}
    (tmp_path / "hlq.json").write_text(json.dumps(licensed))
    code, out, err = run("questionnaire", "load-licensed", str(tmp_path / "hlq.json"), "--cache", str(cache))
    assert code == 0, err
    loaded = json.loads(out)
    assert [i["text"] for g in loaded["item"] for i in g["item"] if not i.get("readOnly")] == \
        [f"Licenseret tekst {s}.{i}" for s in (6, 9) for i in range(1, 6)]
    assert loaded["copyright"].startswith("HLQ ©")


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def test_damaged_responses_give_findings_never_exceptions(content: Content) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base = patient_response()
    paths = _paths(base)[1:]
    junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3), max_leaves=6)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(paths), junk)
    def damaged(path: tuple[Any, ...], value: Any) -> None:
        doc = copy.deepcopy(base)
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        result = score(doc, content)
        assert result.scores is None or result.valid
        suggestion = triage(doc, assessment(), content)
        assert suggestion.resource is None or suggestion.valid

    damaged()

    suggestion = triage(base, assessment(), content).resource
    assert suggestion is not None
    suggestion_paths = _paths(suggestion)[1:]

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(suggestion_paths), junk, st.sampled_from(["red", "yellow", "green", "blue"]))
    def damaged_suggestion(path: tuple[Any, ...], value: Any, colour: str) -> None:
        doc = copy.deepcopy(suggestion)
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        decision = decide(doc, colour, reason="x")
        assert decision.resource is None or decision.colour == colour

    damaged_suggestion()
