"""Step code for the care package's features: the GP's triage (features/laege) and the patient's questionnaire
(features/borger/spoergeskema.feature), through the same Python API a GP system would call."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from kroniker.clinical import Content, Decision, Scored, Suggestion, decide, score, triage
from kroniker.clinical.messages import message
from kroniker.validators.packages import PackageCache
from tests.clinical_support import assessment, find_item, install_packages, patient_response

ENGLISH = re.compile(r"\b(the|of|is|not|required|answered|reason|changed|expected|found)\b", re.IGNORECASE)
NEED = {"lavt": "need-low", "moderat": "need-moderate", "højt": "need-high"}
COLOUR = {"rødt": "red", "gult": "yellow", "grønt": "green", "rød": "red", "gul": "yellow", "grøn": "green"}
# STarT Back items 1-8 agreed, and item 9, for each risk group as the patient's answers give it.
STARTBACK = {"høj": ((True, False, True, False, True, True, True, False), "very-much"),
             "mellem": ((True, True, True, True, False, False, False, False), "slightly"),
             "lav": ((False,) * 8, "slightly")}


@dataclass
class Case:
    patient: dict[str, Any] = field(default_factory=patient_response)
    gp: dict[str, Any] = field(default_factory=assessment)
    scored: Scored | None = None
    suggestion: Suggestion | None = None
    decision: Decision | None = None
    reason: str | None = None


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Content:
    root = tmp_path_factory.mktemp("packages")
    install_packages(root / "cache", root / "dist")
    return Content(PackageCache(root / "cache"))


@pytest.fixture
def case() -> Case:
    return Case()


scenarios("laege/triage.feature", "borger/spoergeskema.feature")


# -- the GP ------------------------------------------------------------------------------------------------

@given(parsers.parse("at {name} er tilknyttet lænderygpakken hos {clinic}"))
def enrolled(case: Case) -> None:
    case.patient = patient_response()


@given("at Niels har svaret, at han ofte har brug for hjælp til at læse skriftligt materiale fra lægen")
def needs_help_reading(case: Case) -> None:
    find_item(case.patient, "hl.sils.1")["answer"][0]["valueCoding"]["code"] = "often"


@given(parsers.parse("at hans svar på STarT Back giver {group} risiko"))
def startback_group(case: Case, group: str) -> None:
    agreed, item9 = STARTBACK[group]
    for i, a in enumerate(agreed, 1):
        find_item(case.patient, f"startback.{i}")["answer"][0]["valueCoding"]["code"] = "agree" if a else "disagree"
    find_item(case.patient, "startback.9")["answer"][0]["valueCoding"]["code"] = item9


@given(parsers.parse("at lægen har vurderet hans kliniske behov som {need}"))
def gp_need(case: Case, need: str) -> None:
    case.gp = assessment(need=NEED[need])


@when("lægesystemet beder om et triageforslag")
def ask_for_triage(case: Case, content: Content) -> None:
    case.suggestion = triage(case.patient, case.gp, content)
    assert case.suggestion.resource is not None, [message(f, "da") for f in case.suggestion.findings]


@when(parsers.re(r'lægen vælger (?P<colour>rød|gul|grøn) med begrundelsen "(?P<reason>[^"]+)"'))
def choose_with_reason(case: Case, colour: str, reason: str) -> None:
    assert case.suggestion is not None and case.suggestion.resource is not None
    case.reason = reason
    case.decision = decide(case.suggestion.resource, COLOUR[colour], reason=reason)


@when(parsers.re(r"lægen vælger (?P<colour>rød|gul|grøn) uden begrundelse"))
def choose_without_reason(case: Case, colour: str) -> None:
    assert case.suggestion is not None and case.suggestion.resource is not None
    case.decision = decide(case.suggestion.resource, COLOUR[colour])


@then(parsers.re(r"er forslaget (?P<colour>rødt|gult|grønt)"))
def suggested(case: Case, colour: str) -> None:
    assert case.suggestion is not None and case.suggestion.colour == COLOUR[colour]


@then(parsers.parse('begrundelsen nævner "{text}"'))
def reason_names(case: Case, text: str) -> None:
    assert case.suggestion is not None and case.suggestion.resource is not None
    assert text in case.suggestion.resource["summary"]
    assert any(text == f["itemCodeableConcept"].get("text") for f in case.suggestion.resource["finding"][1:])


@then("forslaget nævner regelsættets version og begge besvarelser")
def names_version_and_inputs(case: Case) -> None:
    assert case.suggestion is not None and case.suggestion.resource is not None
    params = case.suggestion.resource["contained"][0]["parameter"]
    assert any(p["name"] == "library" and p["valueCanonical"].endswith("|0.1.0") for p in params)
    refs = [part["valueReference"]["reference"] for p in params if p["name"] == "input" for part in p["part"]
            if part["name"] == "response"]
    assert refs == [f"QuestionnaireResponse/{case.patient['id']}", f"QuestionnaireResponse/{case.gp['id']}"]


@then("forslaget er mærket som foreløbigt og ikke Sundhedsstyrelsens regel")
def provisional(case: Case) -> None:
    assert case.suggestion is not None and case.suggestion.resource is not None
    assert case.suggestion.provisional
    assert "Ikke Sundhedsstyrelsens regel" in case.suggestion.resource["note"][0]["text"]


@then(parsers.re(r"er beslutningen (?P<colour>rød|gul|grøn)"))
def decided(case: Case, colour: str) -> None:
    assert case.decision is not None and case.decision.resource is not None
    assert case.decision.resource["finding"][0]["itemCodeableConcept"]["coding"][0]["code"] == COLOUR[colour]


@then("beslutningen peger tilbage på forslaget")
def points_back(case: Case) -> None:
    assert case.decision is not None and case.decision.resource is not None and case.suggestion is not None
    assert case.suggestion.resource is not None
    assert case.decision.resource["previous"]["reference"] == f"ClinicalImpression/{case.suggestion.resource['id']}"


@then(parsers.re(r"det (?P<colour>røde|gule|grønne) forslag står stadig ved siden af beslutningen"))
def suggestion_kept(case: Case, colour: str) -> None:
    assert case.decision is not None and case.decision.resource is not None
    kept = next(e for e in case.decision.resource["extension"] if e["url"].endswith("triage-suggested-finding"))
    assert kept["valueCodeableConcept"]["coding"][0]["code"] == {"røde": "red", "gule": "yellow",
                                                                 "grønne": "green"}[colour]


@then("begrundelsen står i beslutningen")
def reason_recorded(case: Case) -> None:
    assert case.decision is not None and case.decision.resource is not None
    assert case.decision.resource["note"] == [{"text": case.reason}]


@then(parsers.parse('afvises beslutningen med fejlen "{code}"'))
def decision_refused(case: Case, code: str) -> None:
    assert case.decision is not None and case.decision.resource is None
    assert [f.code for f in case.decision.findings] == [code]


# -- the patient -------------------------------------------------------------------------------------------

@given("at jeg har svaret på alle spørgsmål om min ryg")
def answered_everything(case: Case) -> None:
    case.patient = patient_response(odi=(1, 2, 1, 2, 1, 2, 1, 0, 1, 2))


@given(parsers.parse('at jeg er enig i fire af de første otte STarT Back-udsagn og har svaret "{answer}" til, '
                     "hvor generende smerterne har været"))
def four_agreed(case: Case, answer: str) -> None:
    for i in range(1, 9):
        find_item(case.patient, f"startback.{i}")["answer"][0]["valueCoding"]["code"] = "agree" if i <= 4 else \
            "disagree"
    code = {"slet ikke": "not-at-all", "lidt": "slightly", "moderat": "moderately", "meget": "very-much",
            "ekstremt": "extremely"}[answer]
    find_item(case.patient, "startback.9")["answer"][0]["valueCoding"]["code"] = code


@given(parsers.parse("at jeg har sprunget STarT Back-spørgsmål {n:d} over"))
def skipped_startback(case: Case, n: int) -> None:
    group = find_item(case.patient, "startback")
    group["item"] = [i for i in group["item"] if i["linkId"] != f"startback.{n}"]


@given("at jeg har sprunget to afsnit over i Oswestry-skemaet")
def skipped_two_odi(case: Case) -> None:
    group = find_item(case.patient, "odi")
    group["item"] = [i for i in group["item"] if i["linkId"] not in ("odi.3", "odi.7")]


@when("mine svar modtages")
def received(case: Case, content: Content) -> None:
    case.scored = score(case.patient, content)


@then(parsers.parse("er min STarT Back-score {total:d} med {group} risiko"))
def startback_score(case: Case, total: int, group: str) -> None:
    assert case.scored is not None and case.scored.scores is not None
    assert case.scored.scores["startback.total"] == total
    assert case.scored.scores["startback.risk"] == {"lav": "low", "mellem": "medium", "høj": "high"}[group]


@then("scorerne gemmes som målinger, der peger tilbage på mine svar")
def observations(case: Case) -> None:
    assert case.scored is not None and case.scored.observations
    assert all(o["resourceType"] == "Observation" and
               o["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{case.patient['id']}"}]
               for o in case.scored.observations)


@then(parsers.parse('afvises besvarelsen med fejlen "{code}"'))
def response_refused(case: Case, code: str) -> None:
    assert case.scored is not None and not case.scored.valid
    assert code in [f.code for f in case.scored.findings]


@then("der beregnes ingen scorer")
def no_scores(case: Case) -> None:
    assert case.scored is not None and case.scored.scores is None and case.scored.observations == []


@then(parsers.parse('beskeden er på dansk og siger "{word}"'))
def danish_message(case: Case, word: str) -> None:
    findings = (case.decision.findings if case.decision else []) or (case.scored.findings if case.scored else [])
    texts = [message(f, "da") for f in findings if f.severity.label == "error"]
    assert texts and any(word in t for t in texts), texts
    assert not any(ENGLISH.search(t.split(": ", 1)[-1]) for t in texts), texts


@then(parsers.parse('er der ingen ODI-score, og advarslen "{code}" siger hvorfor'))
def no_odi(case: Case, code: str) -> None:
    assert case.scored is not None and case.scored.scores is not None
    assert case.scored.scores["odi.percent"] is None
    warning = next(f for f in case.scored.findings if f.code == code and f.params["score"] == "odi.percent")
    assert "mere end ét" in message(warning, "da")


@then("min STarT Back-score er stadig beregnet")
def startback_still(case: Case) -> None:
    assert case.scored is not None and case.scored.scores is not None
    assert isinstance(case.scored.scores["startback.total"], int)


