"""`check` against the articles: the shipped template passes; every mandatory element removed gives its own finding
naming its article (in English and Danish); the consistency checks catch what a DPO asks about."""

from __future__ import annotations

import copy
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from kroniker.dpia import checks, model
from kroniker.validators import Severity
from tests.dpia_support import TODAY, codes, get, resolve, template, without

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = ROOT / "validators" / "messages"


def run(document: dict[str, Any], today: date = TODAY) -> list[Any]:
    return checks.check(document, today)


def errors(findings: list[Any]) -> list[Any]:
    return [f for f in findings if f.severity >= Severity.ERROR]


def test_the_shipped_template_passes_without_findings() -> None:
    findings = run(template())
    assert not errors(findings), [f"{f.code} {f.location}" for f in findings]
    assert findings == [], [f"{f.code} {f.location}" for f in findings]


def test_the_shipped_template_describes_the_memo_s_solution_with_each_party_s_role() -> None:
    doc = template()
    roles = {(a["id"], r["organisation"]): r["role"] for a in doc["activities"] for r in a["roles"]}
    # PLO's memo: the LPS is the main engine, run by the clinic's vendor on its behalf; the clinic decides.
    assert roles[("lps-documentation", "clinic")] == "controller"
    assert roles[("lps-documentation", "lps-vendor")] == "processor"
    # The diagnosis card is shared via the national platform and shown on sundhed.dk and in the Min læge app.
    assert roles[("diagnosis-card", "sds")] == "independent-controller"
    assert roles[("diagnosis-card", "sundhed-dk")] == "independent-controller"
    assert roles[("diagnosis-card", "plo")] == "processor"
    # Questionnaires via WebPatient and the Min læge app; population lists in Klinikkens cockpit; the Health Hub.
    assert roles[("questionnaires", "webpatient")] == "processor"
    assert roles[("population-lists", "plo")] == "processor"
    assert roles[("health-hub", "health-hub")] == "processor"
    assert roles[("health-hub", "hub-hosting")] == "sub-processor"
    assert roles[("journal-note-sharing", "sds")] == "independent-controller"
    for activity in doc["activities"]:
        basis = activity["record"]["legal_basis"]
        assert "9(2)(h)" in {b["ref"] for b in basis["art9"]}
        assert any("sundhedsloven" in n["ref"] for n in basis["national"])


# -- every mandatory element, removed ---------------------------------------------------------------------

LPS = "/activities[lps-documentation]"
POPULATION = "/activities[population-lists]"

# (what is removed, the finding expected, where it is expected (default: the removed element), the article as
# GDPR writes it in English and as Danish legal texts cite it). Written from the articles, not from the code.
REMOVED: list[tuple[str, str, str | None, str, str]] = [
    (f"{LPS}/roles/0", "DPIA-30-1-A-CONTROLLER", f"{LPS}/roles", "Art. 30(1)(a)", "art. 30, stk. 1, litra a"),
    ("/dpo", "DPIA-30-1-A-DPO", None, "Art. 30(1)(a)", "art. 30, stk. 1, litra a"),
    (f"{LPS}/record/purposes", "DPIA-30-1-B-PURPOSES", None, "Art. 30(1)(b)", "art. 30, stk. 1, litra b"),
    (f"{LPS}/record/data_subjects", "DPIA-30-1-C-SUBJECTS", None, "Art. 30(1)(c)", "art. 30, stk. 1, litra c"),
    (f"{LPS}/record/data_categories", "DPIA-30-1-C-DATA", None, "Art. 30(1)(c)", "art. 30, stk. 1, litra c"),
    (f"{LPS}/record/recipients", "DPIA-30-1-D-RECIPIENTS", None, "Art. 30(1)(d)", "art. 30, stk. 1, litra d"),
    (f"{LPS}/record/transfers", "DPIA-30-1-E-TRANSFERS", None, "Art. 30(1)(e)", "art. 30, stk. 1, litra e"),
    (f"{LPS}/record/data_categories[health-record]/retention", "DPIA-30-1-F-RETENTION", None, "Art. 30(1)(f)",
     "art. 30, stk. 1, litra f"),
    (f"{LPS}/record/security", "DPIA-30-1-G-SECURITY", None, "Art. 30(1)(g)", "art. 30, stk. 1, litra g"),
    (f"{LPS}/record/legal_basis/art6", "DPIA-6-BASIS", None, "Art. 6(1)", "art. 6, stk. 1"),
    (f"{LPS}/record/legal_basis/art9", "DPIA-9-BASIS", None, "Art. 9(2)", "art. 9, stk. 2"),
    (f"{LPS}/record/legal_basis/national", "DPIA-9-NATIONAL-LAW", None, "Art. 9(2)(h)", "art. 9, stk. 2, litra h"),
    (f"{LPS}/record/legal_basis/art9_3", "DPIA-9-3-SECRECY", None, "Art. 9(3)", "art. 9, stk. 3"),
    (f"{LPS}/processor_records/0", "DPIA-30-2-RECORD", f"{LPS}/roles/1", "Art. 30(2)", "art. 30, stk. 2"),
    (f"{LPS}/processor_records/0/controllers", "DPIA-30-2-A-CONTROLLERS", None, "Art. 30(2)(a)",
     "art. 30, stk. 2, litra a"),
    ("/organisations[health-hub]/contact", "DPIA-30-2-A-PROCESSOR", f"{POPULATION}/processor_records/1/processor",
     "Art. 30(2)(a)", "stk. 2, litra a"),
    (f"{LPS}/processor_records/0/categories", "DPIA-30-2-B-CATEGORIES", None, "Art. 30(2)(b)",
     "art. 30, stk. 2, litra b"),
    (f"{LPS}/processor_records/0/transfers", "DPIA-30-2-C-TRANSFERS", None, "Art. 30(2)(c)",
     "art. 30, stk. 2, litra c"),
    (f"{LPS}/processor_records/0/security", "DPIA-30-2-D-SECURITY", None, "Art. 30(2)(d)", "art. 30, stk. 2, litra d"),
    ("/agreements[dpa-lps]", "DPIA-28-3-AGREEMENT-MISSING", f"{LPS}/roles/1", "Art. 28(3)", "art. 28, stk. 3"),
    ("/agreements[sub-hub-hosting]", "DPIA-28-4-AGREEMENT-MISSING", f"{POPULATION}/roles/3", "Art. 28(4)",
     "art. 28, stk. 4"),
    *[(f"/agreements[dpa-lps]/clauses/{c}", f"DPIA-28-3-{c.upper()}", None, f"Art. 28(3)({c})",
       f"art. 28, stk. 3, litra {c}") for c in "abcdefgh"],
    *[(f"/agreements[dpa-hub]/terms/{t}", "DPIA-28-3-TERMS", None, "Art. 28(3)", "art. 28, stk. 3")
      for t in ("subject_matter", "duration", "nature", "purpose", "data_types", "data_subjects", "controller_rights")],
    ("/agreements[sub-hub-hosting]/signed", "DPIA-28-9-WRITING", None, "Art. 28(9)", "art. 28, stk. 9"),
    ("/agreements[dpa-hub]/audit", "DPIA-28-1-AUDIT", None, "Art. 28(1)", "art. 28, stk. 1"),
    ("/sub_processor_approvals[approval-hub-hosting]", "DPIA-28-2-SUBPROCESSOR-UNAPPROVED", f"{POPULATION}/roles/3",
     "Art. 28(2)", "art. 28, stk. 2"),
    ("/dpia", "DPIA-35-MISSING", None, "Art. 35(1)", "art. 35, stk. 1"),
    ("/dpia/scope", "DPIA-35-1-SCOPE", None, "Art. 35(1)", "art. 35, stk. 1"),
    ("/dpia/screening", "DPIA-35-1-SCREENING", None, "Art. 35(1)", "art. 35, stk. 1"),
    ("/dpia/description", "DPIA-35-7-A-DESCRIPTION", None, "Art. 35(7)(a)", "art. 35, stk. 7, litra a"),
    *[(f"/dpia/description/{item}", "DPIA-35-7-A-DESCRIPTION", None, "Art. 35(7)(a)", "art. 35, stk. 7, litra a")
      for item in ("nature", "scope", "context", "purposes")],
    ("/dpia/necessity", "DPIA-35-7-B-NECESSITY", None, "Art. 35(7)(b)", "art. 35, stk. 7, litra b"),
    *[(f"/dpia/necessity/{item}", "DPIA-35-7-B-NECESSITY", None, "Art. 35(7)(b)", "art. 35, stk. 7, litra b")
      for item in ("purposes", "lawfulness", "minimisation", "accuracy", "storage", "information",
                   "access_portability", "rectification_erasure", "objection_restriction", "processors", "transfers")],
    ("/dpia/risks", "DPIA-35-7-C-RISKS", None, "Art. 35(7)(c)", "art. 35, stk. 7, litra c"),
    *[(f"/dpia/risks[r-vendor-breach]/{item}", "DPIA-35-7-C-RISK-INCOMPLETE", None, "Art. 35(7)(c)",
       "art. 35, stk. 7, litra c") for item in ("threat", "sources", "impacts")],
    *[(f"/dpia/risks[r-vendor-breach]/{item}", "DPIA-35-7-C-RISK-ESTIMATE", None, "Art. 35(7)(c)",
       "art. 35, stk. 7, litra c") for item in ("inherent", "residual")],
    ("/dpia/measures", "DPIA-35-7-D-MEASURES", None, "Art. 35(7)(d)", "art. 35, stk. 7, litra d"),
    ("/dpia/risks[r-vendor-breach]/measures", "DPIA-35-7-D-RISK-UNTREATED", None, "Art. 35(7)(d)",
     "art. 35, stk. 7, litra d"),
    ("/dpia/measures[m-hub-purpose]/owner", "DPIA-MEASURE-INCOMPLETE", None, "Art. 35(7)(d)",
     "art. 35, stk. 7, litra d"),
    ("/dpia/measures[m-hub-purpose]/deadline", "DPIA-MEASURE-INCOMPLETE", None, "Art. 35(7)(d)",
     "art. 35, stk. 7, litra d"),
    ("/dpia/codes_of_conduct", "DPIA-35-8-CODES", None, "Art. 35(8)", "art. 35, stk. 8"),
    ("/dpia/data_subject_views", "DPIA-35-9-VIEWS", None, "Art. 35(9)", "art. 35, stk. 9"),
    ("/dpia/data_subject_views/reason", "DPIA-35-9-VIEWS", "/dpia/data_subject_views", "Art. 35(9)",
     "art. 35, stk. 9"),
    ("/dpia/review", "DPIA-35-11-REVIEW", None, "Art. 35(11)", "art. 35, stk. 11"),
    ("/dpia/review/next", "DPIA-35-11-REVIEW", None, "Art. 35(11)", "art. 35, stk. 11"),
    ("/dpia/review/triggers", "DPIA-35-11-TRIGGERS", None, "Art. 35(11)", "art. 35, stk. 11"),
    ("/dpia/prior_consultation", "DPIA-36-DECISION", None, "Art. 36(1)", "art. 36, stk. 1"),
]


@pytest.mark.parametrize(("selector", "code", "at", "article_en", "article_da"), REMOVED,
                         ids=[c[0] for c in REMOVED])
def test_removing_a_mandatory_element_gives_its_finding_naming_the_article(
        selector: str, code: str, at: str | None, article_en: str, article_da: str) -> None:
    before = template()
    assert code not in codes(run(before)), "the template must not have the finding to begin with"
    doc, path = without(before, selector)
    found = [f for f in run(doc) if f.code == code]
    assert found, f"removing {selector} gave {sorted(codes(run(doc)))}, not {code}"
    where = model.pointer(resolve(before, at)) if at else model.pointer(path)
    here = [f for f in found if f.location == where]
    assert here, f"{code} at {[f.location for f in found]}, expected at {where}"
    assert article_en in here[0].message("en"), here[0].message("en")
    assert article_da in here[0].message("da").lower(), here[0].message("da")


def test_an_element_the_articles_do_not_demand_can_go_without_an_error() -> None:
    # An independent controller (the national platform) is not ours to record contact details for.
    doc, _ = without(template(), "/organisations[sds]/contact")
    assert not errors(run(doc))


def test_a_missing_threat_is_named() -> None:
    doc = template()
    doc["dpia"]["risks"] = [r for r in doc["dpia"]["risks"] if r["threat"] != "loss"]
    found = [f for f in run(doc) if f.code == "DPIA-35-7-C-THREATS"]
    assert len(found) == 1
    assert "loss" in found[0].message("en") and "tab" in found[0].message("da")


# -- consistency ------------------------------------------------------------------------------------------

def add_processor(doc: dict[str, Any], activity: str, org_id: str, name: str, role: str = "processor",
                  acts_for: str = "clinic") -> tuple[str | int, ...]:
    doc["organisations"].append({"id": org_id, "name": name, "kind": "vendor",
                                 "contact": {"email": f"{org_id}@x.example"}})
    path = resolve(doc, f"/activities[{activity}]")
    act = get(doc, path)
    act["roles"].append({"organisation": org_id, "role": role, "acts_for": acts_for})
    act["processor_records"].append({"processor": org_id, "controllers": ["clinic"], "categories": ["Fjernsupport"],
                                     "transfers": [], "security": {"description": "VPN og personligt login"}})
    return (*path, "roles", len(act["roles"]) - 1)


def test_a_processor_without_an_agreement_is_caught() -> None:
    doc = template()
    role = add_processor(doc, "lps-documentation", "it-support", "Klinik-IT ApS")
    found = [f for f in run(doc) if f.code == "DPIA-28-3-AGREEMENT-MISSING"]
    assert [f.location for f in found] == [model.pointer(role)]
    assert found[0].severity == Severity.ERROR
    assert "Klinik-IT ApS" in found[0].message("en") and "Klinik-IT ApS" in found[0].message("da")


def test_an_agreement_must_cover_the_activity() -> None:
    doc = template()
    role = add_processor(doc, "lps-documentation", "it-support", "Klinik-IT ApS")
    agreement = copy.deepcopy(get(doc, resolve(doc, "/agreements[dpa-webpatient]")))
    agreement.update(id="dpa-it", processor="it-support", activities=["questionnaires"])
    doc["agreements"].append(agreement)
    assert [f.location for f in run(doc) if f.code == "DPIA-28-3-AGREEMENT-MISSING"] == [model.pointer(role)]
    agreement["activities"].append("lps-documentation")
    assert "DPIA-28-3-AGREEMENT-MISSING" not in codes(run(doc))


def test_a_sub_processor_nobody_approved_is_caught() -> None:
    doc = template()
    role = add_processor(doc, "lps-documentation", "backup-co", "Backup ApS", role="sub-processor",
                         acts_for="lps-vendor")
    found = {f.code: f for f in run(doc) if f.location == model.pointer(role)}
    assert {"DPIA-28-2-SUBPROCESSOR-UNAPPROVED", "DPIA-28-4-AGREEMENT-MISSING"} <= set(found)
    assert "Backup ApS" in found["DPIA-28-2-SUBPROCESSOR-UNAPPROVED"].message("da")
    doc["sub_processor_approvals"].append({"id": "approval-backup", "controller": "clinic", "processor": "lps-vendor",
                                           "sub_processor": "backup-co", "authorisation": "specific",
                                           "approved": "2026-11-20"})
    assert "DPIA-28-2-SUBPROCESSOR-UNAPPROVED" not in codes(run(doc))


def test_a_sub_processor_s_processor_must_be_in_the_activity() -> None:
    doc = template()
    role = add_processor(doc, "lps-documentation", "backup-co", "Backup ApS", role="sub-processor",
                         acts_for="health-hub")
    assert [f.location for f in run(doc) if f.code == "DPIA-ROLE-ACTS-FOR"] == [model.pointer(role)]


def high_residual(doc: dict[str, Any]) -> tuple[str | int, ...]:
    path = resolve(doc, "/dpia/risks[r-vendor-breach]")
    risk = get(doc, path)
    risk["inherent"] = {"severity": 4, "likelihood": 4}
    risk["residual"] = {"severity": 4, "likelihood": 3}
    return (*path, "residual")


def test_a_high_residual_risk_with_neither_measures_nor_a_prior_consultation_decision_is_an_error() -> None:
    doc = template()
    where = high_residual(doc)
    get(doc, where[:-1])["measures"] = []
    del doc["dpia"]["prior_consultation"]
    found = [f for f in run(doc) if f.code == "DPIA-36-HIGH-RESIDUAL"]
    assert [(f.location, f.severity) for f in found] == [(model.pointer(where), Severity.ERROR)]
    assert "Art. 36(1)" in found[0].message("en") and "art. 36, stk. 1" in found[0].message("da").lower()


def test_a_high_residual_risk_needs_a_decision_even_with_measures() -> None:
    doc = template()
    where = high_residual(doc)
    del doc["dpia"]["prior_consultation"]
    assert [f.location for f in run(doc) if f.code == "DPIA-36-HIGH-RESIDUAL"] == [model.pointer(where)]


@pytest.mark.parametrize(("decision", "expected"), [("consulted", set()), ("not-required", {"DPIA-36-NOT-CONSULTED"}),
                                                    ("required", {"DPIA-36-NOT-CONSULTED"})])
def test_a_prior_consultation_decision_answers_a_high_residual_risk(decision: str, expected: set[str]) -> None:
    doc = template()
    high_residual(doc)
    doc["dpia"]["prior_consultation"]["decision"] = decision
    found = [f for f in run(doc) if f.code.startswith("DPIA-36")]
    assert {f.code for f in found} == expected
    assert not errors(found)


def test_medium_residual_risks_need_no_prior_consultation() -> None:
    doc = template()
    del doc["dpia"]["prior_consultation"]["decision"]
    # Severity 4 with likelihood 1 (the template's worst residual risk) is not high on the 4x4 map.
    assert {f.code for f in run(doc) if f.code.startswith("DPIA-36")} == {"DPIA-36-DECISION"}


def test_health_data_without_an_art_9_basis_is_an_error() -> None:
    doc = template()
    activity = get(doc, resolve(doc, "/activities[questionnaires]"))
    activity["record"]["legal_basis"] = {"art6": [{"ref": "6(1)(e)"}]}
    found = [f for f in run(doc) if f.code == "DPIA-9-BASIS"]
    assert len(found) == 1 and found[0].severity == Severity.ERROR
    assert "Svar om smerter" in found[0].message("en")  # names the health data concerned


def test_no_art_9_basis_is_needed_without_special_categories() -> None:
    doc = template()
    activity = get(doc, resolve(doc, "/activities[questionnaires]"))
    activity["record"]["legal_basis"] = {"art6": [{"ref": "6(1)(e)"}]}
    for category in activity["record"]["data_categories"]:
        category["special"] = "none"
    assert "DPIA-9-BASIS" not in codes(run(doc))


def test_an_overdue_review_is_an_error_counted_in_days() -> None:
    due = date.fromisoformat(template()["dpia"]["review"]["next"])
    assert "DPIA-REVIEW-OVERDUE" not in codes(run(template(), due))
    found = [f for f in run(template(), due + timedelta(days=9)) if f.code == "DPIA-REVIEW-OVERDUE"]
    assert [(f.location, f.severity) for f in found] == [("/dpia/review/next", Severity.ERROR)]
    assert "9 day" in found[0].message("en") and "9 dag" in found[0].message("da")


def test_a_measure_past_its_deadline_is_reported_unless_it_is_done() -> None:
    doc = template()
    day = date(2027, 2, 1)
    open_ = {m["id"] for m in doc["dpia"]["measures"] if m["status"] != "done" and m["deadline"] < day.isoformat()}
    found = {f.params["measure"] for f in run(doc, day) if f.code == "DPIA-MEASURE-OVERDUE"}
    assert found == open_ and found, "only measures not done, with a deadline before the day"
    assert "m-access-control" not in found  # done before its deadline passed
    assert "DPIA-MEASURE-OVERDUE" not in codes(run(doc, TODAY))


def test_a_review_more_than_three_years_ahead_is_a_warning() -> None:
    doc = template()
    doc["dpia"]["review"]["next"] = "2030-06-01"
    found = [f for f in run(doc) if f.code == "DPIA-35-11-INTERVAL"]
    assert [f.severity for f in found] == [Severity.WARNING]


def test_retired_items_no_longer_count_but_references_to_them_are_noticed() -> None:
    doc = template()
    get(doc, resolve(doc, "/agreements[dpa-webpatient]"))["status"] = "terminated"
    assert "DPIA-28-3-AGREEMENT-MISSING" in codes(run(doc))
    get(doc, resolve(doc, "/activities[questionnaires]"))["status"] = "retired"
    assert "DPIA-28-3-AGREEMENT-MISSING" not in codes(run(doc))
    get(doc, resolve(doc, "/dpia/measures[m-backup]"))["status"] = "retired"
    assert "DPIA-REF-RETIRED" in codes(run(doc))


def test_unknown_references_and_duplicate_ids() -> None:
    doc = template()
    get(doc, resolve(doc, "/dpia/risks[r-data-loss]"))["measures"].append("m-nowhere")
    doc["organisations"].append(copy.deepcopy(doc["organisations"][2]))
    found = {f.code: f for f in run(doc)}
    assert "m-nowhere" in found["DPIA-REF-UNKNOWN"].message("en")
    assert found["DPIA-ID-DUPLICATE"].location == f"/organisations/{len(doc['organisations']) - 1}/id"


def test_a_clinic_must_name_the_template_s_placeholders_and_sign_the_agreements() -> None:
    doc = template()
    doc["kind"] = "clinic"
    assert {"DPIA-PLACEHOLDER", "DPIA-28-9-WRITING", "DPIA-30-1-A-CONTROLLER"} <= codes(run(doc))


def test_a_controller_and_processor_at_once_and_joint_controllers_without_an_arrangement() -> None:
    doc = template()
    act = get(doc, resolve(doc, "/activities[population-lists]"))
    act["roles"].append({"organisation": "plo", "role": "joint-controller"})
    assert {"DPIA-28-10-ROLE", "DPIA-26-ARRANGEMENT"} <= codes(run(doc))
    doc["agreements"].append({"id": "joint-cockpit", "kind": "joint-controller", "controllers": ["plo", "clinic"],
                              "activities": ["population-lists"], "status": "signed", "signed": "2026-10-01"})
    assert "DPIA-26-ARRANGEMENT" not in codes(run(doc))


def test_a_residual_risk_above_the_inherent_one_is_a_warning() -> None:
    doc = template()
    get(doc, resolve(doc, "/dpia/risks[r-triage-error]"))["residual"] = {"severity": 3, "likelihood": 1}
    found = [f for f in run(doc) if f.code == "DPIA-RISK-RESIDUAL-ABOVE"]
    assert [f.severity for f in found] == [Severity.WARNING]


def test_schema_problems_are_findings_with_the_place() -> None:
    doc = template()
    risk = resolve(doc, "/dpia/risks[r-data-loss]")
    get(doc, risk)["inherent"]["severity"] = 7
    found = [f for f in run(doc) if f.code == "DPIA-SCHEMA"]
    assert [f.location for f in found] == [model.pointer((*risk, "inherent", "severity"))]


def test_risk_levels_on_the_4x4_map() -> None:
    assert model.risk_level({"severity": 3, "likelihood": 3}) == "high"
    assert model.risk_level({"severity": 4, "likelihood": 2}) == "medium"
    assert model.risk_level({"severity": 2, "likelihood": 2}) == "low"
    assert model.risk_level({"severity": 2}) is None


# -- the catalogue and the documentation -------------------------------------------------------------------

def catalogue(lang: str) -> dict[str, str]:
    return json.loads((MESSAGES / f"{lang}.json").read_text(encoding="utf-8"))


def test_every_code_has_a_message_in_both_languages_and_danish_is_not_english() -> None:
    en, da = catalogue("en"), catalogue("da")
    for code in checks.CODES:
        assert code in en and code in da, code
        assert en[code] != da[code], f"{code} is not translated"
    for key in [k for k in en if k.startswith(("DPIA-", "dpia-"))]:
        assert key in da, key
        assert set(re.findall(r"\{\w+\}", en[key])) == set(re.findall(r"\{\w+\}", da[key])), key


def test_every_code_is_documented_with_its_severity() -> None:
    doc = (ROOT / "docs" / "dpia.md").read_text(encoding="utf-8")
    for code, rule in checks.CODES.items():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{code}` ")), None)
        assert row, f"{code} is not in the table in docs/dpia.md"
        assert f"| {rule.severity.label} |" in row, f"{code}: docs give another severity"
