"""Scores computed by the Questionnaire's own calculatedExpressions (SDC), and derived as Observations.

A response is scored only when it is valid against its Questionnaire. The expressions are FHIRPath, evaluated
by fhirpathpy over a working copy of the response in which each chosen answer carries its option's weight
(`ordinalValue`, as the Questionnaire gives it), so that `weight()` reads it as SDC describes. Calculated items
are evaluated in the Questionnaire's order and their values written into the working copy, so a later score
may read an earlier one (the STarT Back risk group reads the total and the subscore). A Questionnaire's
`variable` extensions are evaluated first and offered as %name.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kroniker.clinical.content import Content
from kroniker.clinical.responses import as_list, check, value_of
from kroniker.validators.findings import Finding, Severity, finding

CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
WEIGHTS = ("http://hl7.org/fhir/StructureDefinition/ordinalValue",
           "http://hl7.org/fhir/StructureDefinition/itemWeight",
           "http://hl7.org/fhir/StructureDefinition/questionnaire-ordinalValue")
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
KRONIKER_NS = uuid.UUID("5d1f6a3e-8c1b-5f4e-9a57-6b1d3c2e4f10")  # ids of derived resources, reproducible

Score = int | float | str | bool | None


@dataclass
class Scored:
    """One response scored: its findings, the scores by id (None when the response was not scored), and the
    scores as Observations derived from it."""

    source: str
    questionnaire: str | None
    findings: list[Finding]
    scores: dict[str, Score] | None
    observations: list[dict[str, Any]] = field(default_factory=list)
    response: dict[str, Any] | None = field(default=None, repr=False)
    calculated: dict[str, Any] = field(default_factory=dict, repr=False)  # the working copy's values, by linkId

    @property
    def valid(self) -> bool:
        return not any(f.severity >= Severity.ERROR for f in self.findings)


def score(response: Any, content: Content, *, source: str = "<response>") -> Scored:
    """Check a response against its Questionnaire and, when it is valid, compute its scores."""
    checked = check(response, content)
    q = checked.questionnaire
    canonical = q.canonical if q else None
    if not checked.valid or q is None:
        return Scored(source, canonical, checked.findings, None, response=response if isinstance(response, dict)
                      else None)
    findings = list(checked.findings)
    work = copy.deepcopy(response)
    items = {i["linkId"]: (i, chain) for i, chain in _q_items(q.resource.get("item"), ())}
    _attach_weights(work.get("item"), items)
    env: dict[str, Any] = {"resource": work, "questionnaire": q.resource}
    for name, variable in _variables(q.resource):
        try:
            env[name] = _evaluate(content, variable, work, env, raw=True)
        except Exception as exc:  # a package's broken expression: a finding, never a traceback
            findings.append(finding(Severity.ERROR, "QR-SCORE-ERROR", f"Questionnaire.variable('{name}')", (),
                                    {"score": f"%{name}", "detail": f"{type(exc).__name__}: {exc}"[:300]}))
            return Scored(source, canonical, findings, None, response=response)
    scores: dict[str, Score] = {}
    for link, (item, chain) in items.items():
        ext = _extension(item, CALCULATED)
        if ext is None:
            continue
        expr: dict[str, Any] = ext.get("valueExpression") or {}
        try:
            values = _evaluate(content, str(expr.get("expression", "")), work, env)
        except Exception as exc:  # a package's broken expression: a finding, never a traceback
            findings.append(finding(Severity.ERROR, "QR-SCORE-ERROR", f"Questionnaire.item('{link}')", (),
                                    {"score": link, "detail": f"{type(exc).__name__}: {exc}"[:300]}))
            scores[link] = None
            continue
        value = _plain(values, item.get("type"))
        if value is None or len(values) > 1:
            scores[link] = None
            if len(values) > 1:
                findings.append(finding(Severity.ERROR, "QR-SCORE-ERROR", f"Questionnaire.item('{link}')", (),
                                        {"score": link, "detail": f"{len(values)} values"}))
            else:
                da, en = _description(expr)
                findings.append(finding(Severity.WARNING, "QR-SCORE-MISSING", f"Questionnaire.item('{link}')", (),
                                        {"score": link, "reason_da": da, "reason_en": en}))
            continue
        scores[link] = value
        given = _given_answer(response.get("item"), link)
        if given is not None and not _equal(given, value):
            findings.append(finding(Severity.WARNING, "QR-SCORE-DIFFERS", f"QuestionnaireResponse.item('{link}')", (),
                                    {"score": link, "found": given, "expected": value}))
        _write(work, chain, link, item.get("type"), value)
    observations = [_observation(response, item, link, scores[link]) for link, (item, _) in items.items()
                    if link in scores and scores[link] is not None]
    return Scored(source, canonical, findings, scores, observations, response=response,
                  calculated={k: v for k, v in scores.items()})


# -- the Questionnaire ---------------------------------------------------------------------------------

def _q_items(items: Any, chain: tuple[str, ...]) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("linkId"), str):
            yield item, chain
            yield from _q_items(item.get("item"), (*chain, item["linkId"]))


def _extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in as_list(element.get("extension")) if isinstance(e, dict) and e.get("url") == url), None)


def _variables(questionnaire: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for e in questionnaire.get("extension") or []:
        if isinstance(e, dict) and e.get("url") == VARIABLE:
            expr = e.get("valueExpression") or {}
            if expr.get("name") and expr.get("expression"):
                yield str(expr["name"]), str(expr["expression"])


def _description(expr: dict[str, Any]) -> tuple[str, str]:
    da = str(expr.get("description") or "")
    en = da
    for t in (expr.get("_description") or {}).get("extension") or []:
        if isinstance(t, dict) and t.get("url") == TRANSLATION:
            parts = {p.get("url"): p for p in t.get("extension") or [] if isinstance(p, dict)}
            if (parts.get("lang") or {}).get("valueCode") == "en":
                en = str((parts.get("content") or {}).get("valueString") or en)
    return da, en


def _weight(option: dict[str, Any]) -> Any:
    for url in WEIGHTS:
        e = _extension(option, url)
        if e is not None:
            return e.get("valueDecimal", e.get("valueInteger"))
    return None


# -- the working copy --------------------------------------------------------------------------------------

def _attach_weights(items: Any, defined: dict[str, tuple[dict[str, Any], tuple[str, ...]]]) -> None:
    """Each chosen Coding gets its option's weight (the response may carry none; SDC's weight() reads the
    Questionnaire's), so the expressions find it on the answer itself."""
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        q = defined.get(str(item.get("linkId")), (None, ()))[0]
        for answer in as_list(item.get("answer")):
            v = value_of(answer)
            if q is not None and v is not None and v[0] == "valueCoding" and isinstance(v[1], dict):
                for option in as_list(q.get("answerOption")):
                    o = value_of(option)
                    w = _weight(option)
                    if o and o[0] == "valueCoding" and w is not None and o[1].get("code") == v[1].get("code") and \
                            o[1].get("system") == v[1].get("system", o[1].get("system")):
                        v[1]["extension"] = [e for e in as_list(v[1].get("extension"))
                                             if not (isinstance(e, dict) and e.get("url") in WEIGHTS)] + \
                            [{"url": WEIGHTS[0], "valueDecimal": w}]
            if isinstance(answer, dict):
                _attach_weights(answer.get("item"), defined)
        _attach_weights(item.get("item"), defined)


def _write(work: dict[str, Any], chain: tuple[str, ...], link: str, kind: Any, value: Score) -> None:
    """Put a calculated value into the working copy where the Questionnaire has its item."""
    items = work.setdefault("item", [])
    for group in chain:
        parent = next((i for i in items if isinstance(i, dict) and i.get("linkId") == group), None)
        if parent is None:
            parent = {"linkId": group, "item": []}
            items.append(parent)
        items = parent.setdefault("item", [])
    target = next((i for i in items if isinstance(i, dict) and i.get("linkId") == link), None)
    if target is None:
        target = {"linkId": link}
        items.append(target)
    target["answer"] = [{_value_key(kind, value): value}]


def _value_key(kind: Any, value: Score) -> str:
    return {"integer": "valueInteger", "decimal": "valueDecimal", "boolean": "valueBoolean"}.get(
        str(kind), "valueBoolean" if isinstance(value, bool) else "valueString")


def _given_answer(items: Any, link: str) -> Any:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            if item.get("linkId") == link:
                v = value_of((as_list(item.get("answer")) or [None])[0])
                return v[1] if v else None
            found = _given_answer(item.get("item"), link)
            if found is not None:
                return found
    return None


def _equal(a: Any, b: Score) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return Decimal(str(a)) == Decimal(str(b))
    return bool(a == b)


# -- FHIRPath ----------------------------------------------------------------------------------------------

def _evaluate(content: Content, expression: str, work: dict[str, Any], env: dict[str, Any], *,
              raw: bool = False) -> list[Any]:
    """The expression's values; `raw` keeps fhirpathpy's nodes (a variable's value, navigated further by the
    expressions that use it)."""
    key = ("fhirpath", expression, raw)
    compiled = content.memo.get(key)
    if compiled is None:
        from fhirpathpy import compile as fp_compile  # only scoring needs the interpreter
        from fhirpathpy.models import models

        compiled = fp_compile(expression, models["r4"], {"userInvocationTable": _FUNCTIONS, "returnRawData": raw})
        content.memo[key] = compiled
    fn: Callable[..., list[Any]] = compiled
    return list(fn(work, env))


def _weights_of(inputs: list[Any]) -> list[Any]:
    """FHIRPath weight() / ordinal(): the weight on each answer value (a Coding carrying ordinalValue)."""
    out = []
    for value in inputs:
        if isinstance(value, dict):
            w = _weight(value)
            if w is not None:
                out.append(w)
    return out


_FUNCTIONS = {"weight": {"fn": _weights_of, "arity": {0: []}}, "ordinal": {"fn": _weights_of, "arity": {0: []}}}


def _plain(values: list[Any], kind: Any) -> Score:
    if len(values) != 1:
        return None
    v = values[0]
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float, Decimal)):
        if kind == "integer" or (isinstance(v, Decimal) and v == v.to_integral_value() and kind != "decimal"):
            return int(v)
        return float(v)
    return str(v)


# -- Observations ------------------------------------------------------------------------------------------

def _observation(response: dict[str, Any], item: dict[str, Any], link: str, value: Score) -> dict[str, Any]:
    ident = response.get("id") or hashlib.sha256(repr(sorted(response.items())).encode()).hexdigest()
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(KRONIKER_NS, f"{ident}|{link}")),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "survey", "display": "Survey"}]}],
        "code": {"coding": [dict(c) for c in item.get("code") or []], "text": item.get("text") or link},
    }
    for key in ("subject", "encounter"):
        if isinstance(response.get(key), dict):
            obs[key] = response[key]
    if isinstance(response.get("authored"), str):
        obs["effectiveDateTime"] = response["authored"]
    if response.get("id"):
        obs["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{response['id']}"}]
    elif isinstance(response.get("identifier"), dict):
        obs["derivedFrom"] = [{"type": "QuestionnaireResponse", "identifier": response["identifier"]}]
    else:
        obs["derivedFrom"] = [{"type": "QuestionnaireResponse", "display": "the scored QuestionnaireResponse"}]
    unit = _extension(item, UNIT)
    if isinstance(value, bool):
        obs["valueBoolean"] = value
    elif isinstance(value, int):
        obs["valueInteger"] = value
    elif isinstance(value, float):
        q: dict[str, Any] = {"value": value}
        coding = (unit or {}).get("valueCoding") or {}
        if coding.get("code"):
            q.update({"unit": coding.get("display") or coding["code"], "system": coding.get("system"),
                      "code": coding["code"]})
        obs["valueQuantity"] = q
    else:
        obs["valueString"] = str(value)
    return obs
