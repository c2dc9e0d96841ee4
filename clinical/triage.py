"""Triage by a package's rule set, in the shape of the national telemedicine infrastructure (FUT), and the GP's
decision on the suggestion.

A rule set is a Library (type logic-library) that depends on the package's Questionnaires; its content is a JSON
list of rules, each an answer significance as FUT has it (significance red/yellow/green; answer conditions of a
value and a questionnaire-enable-operator on a linkId) generalised to any number of conditions, all of which must
hold. A linkId names an answer of either response or a score their Questionnaires calculate. The overall colour
is the worst significance that fired. The suggestion is a ClinicalImpression (code TriagingResult) with FUT's
finding codes, each fired condition as a findingBasis, and the decision context (the rule set's canonical and
version, the inputs and the values the rules read) as a contained Parameters. The GP's decision is a second
ClinicalImpression pointing back with `previous`, keeping the suggested colour beside the decided one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from kroniker.clinical.content import Content, ContentError, Found, attachment_json
from kroniker.clinical.responses import as_dict, as_list, value_of
from kroniker.clinical.scoring import KRONIKER_NS, Scored, score
from kroniker.validators.findings import Finding, Severity, finding

FUT = "http://ehealth.sundhed.dk"
FUT_CODES = f"{FUT}/cs/clinicalimpression-codes"
FUT_FINDINGS = f"{FUT}/cs/clinicalimpression-finding-codes"
FUT_DECISIONS = f"{FUT}/cs/clinicalimpression-decision-codes"
FUT_SIGNIFICANCE = f"{FUT}/cs/questionnaire-item-significance-indicator"
FUT_DECISION_CONTEXT = f"{FUT}/fhir/StructureDefinition/ehealth-clinicalimpression-decisionContext"
FUT_DECISION = f"{FUT}/fhir/StructureDefinition/ehealth-clinicalimpression-decision"
FUT_FINDING_BASIS = f"{FUT}/fhir/StructureDefinition/ehealth-questionnaireresponse-finding-basis"
KRONIKER = "https://kroniker.example/fhir"
PROVISIONAL = f"{KRONIKER}/StructureDefinition/provisional"
RULE = f"{KRONIKER}/StructureDefinition/triage-rule"
SUGGESTED = f"{KRONIKER}/StructureDefinition/triage-suggested-finding"
DECISIONS = f"{KRONIKER}/CodeSystem/triage-decision"
COLOURS = ("green", "yellow", "red")  # in order of severity
OPERATORS = ("exists", "=", "!=", ">", "<", ">=", "<=")
VALUE_KEYS = ("valueCoding", "valueString", "valueDecimal", "valueInteger", "valueBoolean")


@dataclass
class Fired:
    """A rule whose conditions all held, and the values that made them hold."""

    rule: dict[str, Any]
    values: list[tuple[dict[str, Any], tuple[str, Any] | None]]  # (condition, the input value it matched)

    @property
    def significance(self) -> str:
        return str(self.rule["significance"])


@dataclass
class Suggestion:
    """The triage of one patient: the findings on its inputs, and when they allowed it, the suggestion."""

    findings: list[Finding]
    patient: Scored | None = None
    assessment: Scored | None = None
    colour: str | None = None
    fired: list[Fired] = field(default_factory=list)
    rule_set: Found | None = None
    provisional: bool = True
    note: dict[str, str] = field(default_factory=dict)
    resource: dict[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return self.resource is not None and not any(f.severity >= Severity.ERROR for f in self.findings)


@dataclass
class Decision:
    findings: list[Finding]
    resource: dict[str, Any] | None = None
    suggested: str | None = None
    colour: str | None = None

    @property
    def valid(self) -> bool:
        return self.resource is not None


# -- triage ------------------------------------------------------------------------------------------------

def triage(patient_response: Any, assessment: Any, content: Content, *, when: datetime | None = None) -> Suggestion:
    """The suggested colour for a patient's response and the GP's assessment, with every rule that fired."""
    patient = score(patient_response, content, source="patient")
    gp = score(assessment, content, source="assessment")
    findings = [_within(f, "patient") for f in patient.findings] + [_within(f, "assessment") for f in gp.findings]
    out = Suggestion(findings, patient, gp)
    if not patient.valid or not gp.valid or patient.questionnaire is None or gp.questionnaire is None:
        return out
    rule_set = content.rule_set_for(patient.questionnaire)
    if rule_set is None:
        findings.append(_f("TRIAGE-RULESET-MISSING", "patient", questionnaire=patient.questionnaire))
        return out
    out.rule_set = rule_set
    depends = [r for r in rule_set.resource.get("relatedArtifact") or []
               if isinstance(r, dict) and r.get("type") == "depends-on"]
    for role, scored in (("patient", patient), ("assessment", gp)):
        # A depends-on labelled with a role (patient, assessment) takes only that role's response.
        wanted = [str(r.get("resource")) for r in depends if r.get("label") in (None, role)]
        if not _takes(wanted, str(scored.questionnaire)):
            findings.append(_f("TRIAGE-QUESTIONNAIRE", role, role=f"@role-{role}", found=scored.questionnaire,
                               ruleset=rule_set.canonical, expected=", ".join(wanted)))
    who = [_subject_key(r) for r in (patient_response, assessment)]
    if who[0] and who[1] and who[0] != who[1]:
        findings.append(_f("TRIAGE-SUBJECT-DIFFERS", "assessment", patient=who[0], assessment=who[1]))
    try:
        rules = _rules(rule_set, content)
    except ContentError as exc:
        findings.append(_f("TRIAGE-RULESET-DAMAGED", "patient", ruleset=rule_set.canonical, detail=str(exc)))
        return out
    if any(f.severity >= Severity.ERROR for f in findings):
        return out
    inputs = _inputs(patient_response, patient) | _inputs(assessment, gp)
    for rule in rules["rules"]:
        matched = [(c, _holds(c, inputs.get(c["linkId"], []))) for c in rule["when"]]
        if all(m is not False for _, m in matched):
            out.fired.append(Fired(rule, [(c, m if isinstance(m, tuple) else None) for c, m in matched]))
    out.colour = max((f.significance for f in out.fired), key=COLOURS.index, default=None)
    out.provisional = bool(rules.get("provisional", True)) or _flag(rule_set.resource, PROVISIONAL)
    out.note = {k: str(v) for k, v in (rules.get("note") or {}).items()}
    out.resource = _suggestion(out, patient_response, assessment, inputs, rules, when)
    return out


def _within(f: Finding, role: str) -> Finding:
    return replace(f, location=f"{role}: {f.location}")


def _f(code: str, where: str, **params: Any) -> Finding:
    return finding(Severity.ERROR, code, where, (), params)


def _takes(wanted: list[str], canonical: str) -> bool:
    url, _, version = canonical.partition("|")
    return any(w in (canonical, url) or (w.split("|", 1)[0] == url and not version) for w in wanted)


def _subject_key(response: Any) -> str | None:
    subject = response.get("subject") if isinstance(response, dict) else None
    if not isinstance(subject, dict):
        return None
    ident = subject.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return f"{ident.get('system', '')}|{ident['value']}"
    return str(subject.get("reference")) if subject.get("reference") else None


def _flag(resource: dict[str, Any], url: str) -> bool:
    return any(isinstance(e, dict) and e.get("url") == url and e.get("valueBoolean") is True
               for e in resource.get("extension") or [])


def _rules(rule_set: Found, content: Content) -> dict[str, Any]:
    key = ("rules", rule_set.canonical, rule_set.package.sha256)
    cached = content.memo.get(key)
    if cached is None:
        cached = content.memo[key] = _checked_rules(attachment_json(rule_set.resource))
    return dict(cached)


def _checked_rules(data: Any) -> dict[str, Any]:
    """The rule set's JSON in the shape triage reads, or ContentError saying where it is not."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ContentError("no list of rules")
    seen = set()
    for i, rule in enumerate(data["rules"]):
        where = f"rules[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("id"), str) or rule["id"] in seen:
            raise ContentError(f"{where}: no id, or an id used twice")
        seen.add(rule["id"])
        if rule.get("significance") not in COLOURS:
            raise ContentError(f"{where}: significance is not one of {', '.join(COLOURS)}")
        when = rule.get("when")
        if not isinstance(when, list) or not when:
            raise ContentError(f"{where}: no conditions (when)")
        for c in when:
            if not isinstance(c, dict) or not isinstance(c.get("linkId"), str) or c.get("operator") not in OPERATORS \
                    or sum(k in c for k in VALUE_KEYS) != 1:
                raise ContentError(f"{where}: a condition needs linkId, an operator ({' '.join(OPERATORS)}) and "
                                   "one value")
    return data


def _inputs(response: dict[str, Any], scored: Scored) -> dict[str, list[tuple[str, Any]]]:
    """Every answer of the response by linkId, and every score its Questionnaire calculated."""
    out: dict[str, list[tuple[str, Any]]] = {}

    def walk(items: Any) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            for answer in as_list(item.get("answer")):
                v = value_of(answer)
                if v is not None:
                    out.setdefault(str(item.get("linkId")), []).append(v)
                if isinstance(answer, dict):
                    walk(answer.get("item"))
            walk(item.get("item"))

    walk(response.get("item"))
    for link, value in (scored.scores or {}).items():
        out.pop(link, None)  # a calculated item is the expression's value, not what the response says
        if value is not None:
            out[link] = [(_value_key(value), value)]
    return out


def _value_key(value: Any) -> str:
    if isinstance(value, bool):
        return "valueBoolean"
    if isinstance(value, int):
        return "valueInteger"
    if isinstance(value, float):
        return "valueDecimal"
    return "valueString"


def _holds(cond: dict[str, Any], values: list[tuple[str, Any]]) -> tuple[str, Any] | bool:
    """False, or the value that satisfied the condition (True when it holds with no value: exists false)."""
    op = cond["operator"]
    want = next(cond[k] for k in VALUE_KEYS if k in cond)
    if op == "exists":
        return (values[0] if values else True) if bool(values) == bool(want) else False
    for kind, value in values:
        if _matches(op, kind, value, want):
            return kind, value
    if op == "!=" and values and all(not _equal(v, want) for _, v in values):
        return values[0]
    return False


def _matches(op: str, kind: str, value: Any, want: Any) -> bool:
    if op == "=":
        return _equal(value, want)
    if op == "!=":
        return False  # decided over all values in _holds
    a, b = _number(value), _number(want)
    if a is None or b is None:
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def _equal(value: Any, want: Any) -> bool:
    if isinstance(value, dict) and isinstance(want, dict):
        return bool(value.get("code") == want.get("code") and
                    (not want.get("system") or not value.get("system") or value.get("system") == want.get("system")))
    a, b = _number(value), _number(want)
    if a is not None and b is not None:
        return a == b
    return bool(value == want)


def _number(v: Any) -> Decimal | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return Decimal(str(v))


# -- the ClinicalImpressions -------------------------------------------------------------------------------

def _reference(response: dict[str, Any]) -> dict[str, Any]:
    if response.get("id"):
        return {"reference": f"QuestionnaireResponse/{response['id']}"}
    if isinstance(response.get("identifier"), dict):
        return {"type": "QuestionnaireResponse", "identifier": response["identifier"]}
    return {"type": "QuestionnaireResponse", "display": "QuestionnaireResponse without id"}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _typed(value: tuple[str, Any]) -> dict[str, Any]:
    kind, v = value
    return {kind: v}


def _now(when: datetime | None) -> str:
    return (when or datetime.now().astimezone()).isoformat(timespec="seconds")


def _suggestion(s: Suggestion, patient: dict[str, Any], assessment: dict[str, Any],
                inputs: dict[str, list[tuple[str, Any]]], rules: dict[str, Any],
                when: datetime | None) -> dict[str, Any]:
    assert s.rule_set is not None and s.patient is not None and s.assessment is not None
    ruleset = s.rule_set.canonical
    used = sorted({c["linkId"] for r in rules["rules"] for c in r["when"]})
    parameters: list[dict[str, Any]] = [
        {"name": "library", "valueCanonical": ruleset},
        {"name": "provisional", "valueBoolean": s.provisional},
    ]
    for role, response, scored in (("patient", patient, s.patient), ("assessment", assessment, s.assessment)):
        parameters.append({"name": "input", "part": [
            {"name": "role", "valueString": role}, {"name": "response", "valueReference": _reference(response)},
            {"name": "questionnaire", "valueCanonical": scored.questionnaire}]})
    for link in used:
        for value in inputs.get(link, []):
            parameters.append({"name": "value", "part": [{"name": "linkId", "valueString": link},
                                                          {"name": "value", **_typed(value)}]})
    extensions: list[dict[str, Any]] = [{"url": FUT_DECISION_CONTEXT, "valueReference": {"reference": "#context"}}]
    findings: list[dict[str, Any]] = []
    for fired in s.fired:
        sig = fired.significance
        text = (fired.rule.get("text") or {}).get("da") or fired.rule["id"]
        findings.append({"itemCodeableConcept": {"coding": [_coding(FUT_FINDINGS, f"{sig}-question-answer")],
                                                 "text": text},
                         "basis": f"{fired.rule['id']}: " + "; ".join(_condition_text(c) for c, _ in fired.values)})
        for cond, matched in fired.values:
            basis: list[dict[str, Any]] = [{"url": "linkId", "valueString": cond["linkId"]}]
            if matched is not None:
                basis.append({"url": "value", **_typed(matched)})
            basis += [
                {"url": "finding",
                 "valueCodeableConcept": {"coding": [_coding(FUT_FINDINGS, f"{sig}-question-answer")]}},
                {"url": f"{FUT}/fhir/StructureDefinition/ehealth-questionnaire-answerSignificance", "extension": [
                    {"url": f"{FUT}/fhir/StructureDefinition/ehealth-answer-Condition", "extension": [
                        {"url": "value", **{k: cond[k] for k in VALUE_KEYS if k in cond}},
                        {"url": "operator", "valueCode": cond["operator"]}]},
                    {"url": "significance", "valueCoding": _coding(FUT_SIGNIFICANCE, sig)}]},
                {"url": RULE, "valueString": fired.rule["id"]}]
            extensions.append({"url": FUT_FINDING_BASIS, "extension": basis})
    extensions.append({"url": PROVISIONAL, "valueBoolean": s.provisional})
    overall = s.colour or "no-effective-answer-significance"
    subject = as_dict(patient.get("subject")) or as_dict(assessment.get("subject")) or {
        "display": "(no subject in the responses)"}
    seed = f"{ruleset}|{_reference(patient)}|{_reference(assessment)}|{patient.get('authored')}"
    resource: dict[str, Any] = {
        "resourceType": "ClinicalImpression",
        "id": str(uuid.uuid5(KRONIKER_NS, seed)),
        "contained": [{"resourceType": "Parameters", "id": "context", "parameter": parameters}],
        "extension": extensions,
        "status": "completed",
        "code": {"coding": [_coding(FUT_CODES, "TriagingResult", "Result of triaging")],
                 "text": "Triageringsresultat"},
        "subject": subject,
        "date": _now(when),
        "investigation": [{"code": {"text": "Spørgeskemabesvarelser"},
                           "item": [_reference(patient), _reference(assessment)]}],
        "protocol": [ruleset],
        "summary": "; ".join(str((f.rule.get("text") or {}).get("da") or f.rule["id"]) for f in s.fired),
        "finding": [{"itemCodeableConcept": {"coding": [_coding(FUT_FINDINGS, overall)]}}, *findings],
    }
    if s.provisional and s.note.get("da"):
        resource["note"] = [{"text": s.note["da"]}]
    return resource


def _condition_text(c: dict[str, Any]) -> str:
    value = next(c[k] for k in VALUE_KEYS if k in c)
    shown = value.get("code") if isinstance(value, dict) else value
    return f"{c['linkId']} {c['operator']} {shown}"


def overall_colour(impression: dict[str, Any]) -> str | None:
    """The overall colour a triage ClinicalImpression states (FUT's red/yellow/green finding), if any."""
    for f in as_list(impression.get("finding")):
        for c in as_list(as_dict(as_dict(f).get("itemCodeableConcept")).get("coding")):
            if isinstance(c, dict) and c.get("system") == FUT_FINDINGS and c.get("code") in COLOURS:
                return str(c["code"])
    return None


# -- the GP's decision -------------------------------------------------------------------------------------

def decide(suggestion: Any, colour: str, *, reason: str | None = None, assessor: dict[str, Any] | None = None,
           when: datetime | None = None) -> Decision:
    """The GP's decision on a suggestion: approve its colour or change it (a reason is then required)."""
    if not isinstance(suggestion, dict) or suggestion.get("resourceType") != "ClinicalImpression" or not any(
            c.get("system") == FUT_CODES and c.get("code") == "TriagingResult"
            for c in as_list(as_dict(suggestion.get("code")).get("coding")) if isinstance(c, dict)):
        found = suggestion.get("resourceType") if isinstance(suggestion, dict) else type(suggestion).__name__
        return Decision([_f("TRIAGE-NOT-SUGGESTION", "(suggestion)", found=found)])
    if colour not in COLOURS:
        return Decision([_f("TRIAGE-COLOUR", "(decision)", found=colour)])
    suggested = overall_colour(suggestion)
    reason = (reason or "").strip() or None
    changed = colour != suggested
    if changed and reason is None:
        return Decision([_f("TRIAGE-REASON-MISSING", "(decision)", suggested=f"@colour-{suggested or 'none'}",
                            decided=f"@colour-{colour}")], suggested=suggested)
    decision = [_coding(DECISIONS, "changed", "Ændret")] if changed else [
        _coding(FUT_DECISIONS, "approved", "Approved"), _coding(DECISIONS, "approved", "Godkendt")]
    extensions: list[dict[str, Any]] = [{"url": FUT_DECISION, "valueCodeableConcept": {"coding": decision}}]
    extensions.append({"url": SUGGESTED, "valueCodeableConcept": {"coding": [
        _coding(FUT_FINDINGS, suggested or "no-effective-answer-significance")]}})
    extensions += [e for e in as_list(suggestion.get("extension"))
                   if isinstance(e, dict) and e.get("url") == PROVISIONAL]
    resource: dict[str, Any] = {
        "resourceType": "ClinicalImpression",
        "id": str(uuid.uuid5(KRONIKER_NS, f"decision|{suggestion.get('id')}|{colour}|{reason}")),
        "extension": extensions,
        "status": "completed",
        "code": {"coding": [_coding(FUT_CODES, "MeasurementAssessment", "Assessment of measurement")],
                 "text": "Lægens vurdering af triageforslaget"},
        "subject": as_dict(suggestion.get("subject")) or {"display": "(no subject)"},
        "date": _now(when),
        "previous": {"reference": f"ClinicalImpression/{suggestion.get('id')}"},
        "protocol": [p for p in as_list(suggestion.get("protocol")) if isinstance(p, str)],
        "finding": [{"itemCodeableConcept": {"coding": [_coding(FUT_FINDINGS, colour)]}}],
    }
    if assessor:
        resource["assessor"] = assessor
    if reason:
        resource["note"] = [{"text": reason}]
    return Decision([], resource, suggested, colour)
