"""A QuestionnaireResponse checked against its Questionnaire: the findings, in the validators' scheme.

What is checked: the response names its Questionnaire (canonical with version) and that is installed; the
status allows scoring; every item exists in the Questionnaire at that place; required items are answered;
a non-repeating item has one answer; an answer's type fits the item's type and, for choices, is one of the
answer options; an item that enableWhen disables has no answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kroniker.clinical.content import Content, Found
from kroniker.validators.findings import Finding, JsonPath, Severity, finding

SCORABLE_STATUSES = ("completed", "amended")
# The value[x] an answer may carry for each item type (R4 Questionnaire.item.type).
ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",), "decimal": ("valueDecimal",), "integer": ("valueInteger",),
    "date": ("valueDate",), "dateTime": ("valueDateTime",), "time": ("valueTime",), "string": ("valueString",),
    "text": ("valueString",), "url": ("valueUri",), "attachment": ("valueAttachment",),
    "reference": ("valueReference",), "quantity": ("valueQuantity",),
    "choice": ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime", "valueReference"),
    "open-choice": ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime", "valueReference"),
    "group": (), "display": (),
}


def as_list(value: Any) -> list[Any]:
    """A JSON array as a list; anything else (a damaged response) as nothing, which the checks report."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def value_of(answer: Any) -> tuple[str, Any] | None:
    """The one value[x] of an answer (or answerOption, enableWhen): (element name, value)."""
    if not isinstance(answer, dict):
        return None
    found = [(k, v) for k, v in answer.items()
             if (k.startswith("value") and k[5:6].isupper()) or (k.startswith("answer") and k[6:7].isupper())]
    return found[0] if len(found) == 1 else None


def same_value(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    """Two values equal in FHIR's sense: codings by system and code, numbers by value."""
    (ka, va), (kb, vb) = a, b
    if ka.removeprefix("answer").removeprefix("value") != kb.removeprefix("answer").removeprefix("value"):
        return False
    if isinstance(va, dict) and isinstance(vb, dict):
        if "code" in va or "code" in vb:
            return bool(va.get("code") == vb.get("code") and
                        (va.get("system") is None or vb.get("system") is None or va.get("system") == vb.get("system")))
        return va == vb
    return va == vb


@dataclass
class Checked:
    """The outcome of checking one response: its findings and the Questionnaire it was checked against."""

    findings: list[Finding]
    questionnaire: Found | None = None

    @property
    def valid(self) -> bool:
        return not any(f.severity >= Severity.ERROR for f in self.findings)


def check(response: Any, content: Content) -> Checked:
    if not isinstance(response, dict) or response.get("resourceType") != "QuestionnaireResponse":
        found = response.get("resourceType") if isinstance(response, dict) else type(response).__name__
        return Checked([_f("QR-NOT-RESPONSE", "(document)", (), found=found)])
    findings: list[Finding] = []
    questionnaire = _questionnaire(response, content, findings)
    status = response.get("status")
    if status not in SCORABLE_STATUSES:
        findings.append(_f("QR-STATUS", "QuestionnaireResponse.status", ("status",), found=status,
                           allowed=" | ".join(SCORABLE_STATUSES)))
    if questionnaire is not None:
        walker = _Walker(questionnaire.resource, response)
        findings.extend(walker.items(questionnaire.resource.get("item"), response.get("item"),
                                     "QuestionnaireResponse", ()))
    return Checked(findings, questionnaire)


def _questionnaire(response: dict[str, Any], content: Content, findings: list[Finding]) -> Found | None:
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        findings.append(_f("QR-QUESTIONNAIRE-MISSING", "QuestionnaireResponse.questionnaire", ()))
        return None
    url, _, version = canonical.partition("|")
    installed = content.versions(url)
    where = ("QuestionnaireResponse.questionnaire", ("questionnaire",))
    if not installed:
        findings.append(_f("QR-QUESTIONNAIRE-UNKNOWN", *where, url=url))
        return None
    if not version:
        findings.append(_f("QR-QUESTIONNAIRE-NO-VERSION", *where, severity=Severity.WARNING, url=url,
                           used=installed[-1]))
        return content.find(url)
    if version not in installed:
        findings.append(_f("QR-QUESTIONNAIRE-VERSION", *where, url=url, version=version,
                           installed=", ".join(installed)))
        return None
    return content.find(canonical)


def _f(code: str, location: str, path: JsonPath, *, severity: Severity = Severity.ERROR, **params: Any) -> Finding:
    return finding(severity, code, location, path, params)


@dataclass
class _Walker:
    questionnaire: dict[str, Any]
    response: dict[str, Any]
    answers: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in _all_items(self.response.get("item")):
            for answer in as_list(item.get("answer")):
                v = value_of(answer)
                if v is not None and isinstance(item.get("linkId"), str):
                    self.answers.setdefault(item["linkId"], []).append(v)

    def items(self, q_items: Any, r_items: Any, base: str, path: JsonPath) -> Iterator[Finding]:
        defined = {q["linkId"]: q for q in as_list(q_items) if isinstance(q, dict) and isinstance(q.get("linkId"), str)}
        given: dict[str, int] = {}
        for i, r in enumerate(r_items if isinstance(r_items, list) else []):
            loc, p = f"{base}.item[{i}]", (*path, "item", i)
            raw = r.get("linkId") if isinstance(r, dict) else None
            q = defined.get(raw) if isinstance(raw, str) else None
            if q is None or not isinstance(raw, str):
                yield _f("QR-ITEM-UNKNOWN", loc, p, linkId=raw if isinstance(raw, str) else "?")
                continue
            link: str = raw
            given[link] = given.get(link, 0) + 1
            if given[link] == 2 and not q.get("repeats"):
                yield _f("QR-ITEM-REPEATS", loc, p, linkId=link, count=sum(
                    1 for x in r_items if isinstance(x, dict) and x.get("linkId") == link))
            yield from self.item(q, r, loc, p)
        for link, q in defined.items():
            if q.get("required") and link not in given and self.enabled(q):
                yield _f("QR-ITEM-REQUIRED", base if base != "QuestionnaireResponse" else "QuestionnaireResponse.item",
                         path, linkId=link, text=q.get("text") or "")

    def item(self, q: dict[str, Any], r: dict[str, Any], loc: str, path: JsonPath) -> Iterator[Finding]:
        link, kind = q["linkId"], q.get("type")
        answers = as_list(r.get("answer"))
        for key in ("answer", "item"):
            if key in r and not isinstance(r[key], list):
                yield _f("QR-ANSWER-TYPE", f"{loc}.{key}", (*path, key), linkId=link, type=kind,
                         found=f"{key}: {type(r[key]).__name__}")
        if answers and not self.enabled(q):
            yield _f("QR-ITEM-DISABLED", loc, path, linkId=link)
        if kind == "group":
            if answers:
                yield _f("QR-ANSWER-TYPE", f"{loc}.answer[0]", (*path, "answer", 0), linkId=link, type=kind,
                         found="answer")
            yield from self.items(q.get("item"), r.get("item"), loc, path)
            return
        if q.get("required") and not answers and self.enabled(q) and not q.get("readOnly"):
            yield _f("QR-ITEM-REQUIRED", loc, path, linkId=link, text=q.get("text") or "")
        if len(answers) > 1 and not q.get("repeats"):
            yield _f("QR-ITEM-REPEATS", loc, path, linkId=link, count=len(answers))
        allowed = ANSWER_TYPES.get(str(kind), ())
        for j, answer in enumerate(answers):
            aloc, apath = f"{loc}.answer[{j}]", (*path, "answer", j)
            v = value_of(answer)
            if v is None or v[0] not in allowed or not _fits(v):
                yield _f("QR-ANSWER-TYPE", aloc, apath, linkId=link, type=kind,
                         found=v[0] if v else ", ".join(sorted(answer)) if isinstance(answer, dict) else "?")
                continue
            options = [value_of(o) for o in as_list(q.get("answerOption"))]
            if kind == "choice" and options and not any(o and same_value(v, o) for o in options):
                yield _f("QR-ANSWER-OPTION", aloc, apath, linkId=link, found=_show(v),
                         allowed=", ".join(_show(o) for o in options if o))
            if isinstance(answer.get("item"), list):
                yield from self.items(q.get("item"), answer["item"], aloc, apath)
        if isinstance(r.get("item"), list) and kind != "group":
            yield from self.items(q.get("item"), r["item"], loc, path)

    def enabled(self, q: dict[str, Any]) -> bool:
        conditions = [c for c in as_list(q.get("enableWhen")) if isinstance(c, dict)]
        if not conditions:
            return True
        results = [self._holds(c) for c in conditions]
        return any(results) if q.get("enableBehavior") == "any" else all(results)

    def _holds(self, cond: dict[str, Any]) -> bool:
        answers = self.answers.get(str(cond.get("question")), [])
        op, want = cond.get("operator"), value_of(cond)
        if op == "exists":
            return bool(answers) == bool(want and want[1])
        if want is None:
            return False
        if op == "=":
            return any(same_value(a, want) for a in answers)
        if op == "!=":
            return bool(answers) and not any(same_value(a, want) for a in answers)
        return any(_compare(a[1], want[1], str(op)) for a in answers)


def _compare(a: Any, b: Any, op: str) -> bool:
    try:
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        x, y = (Decimal(str(a)), Decimal(str(b))) if isinstance(a, (int, float)) else (a, b)
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}.get(op, False)
    except (TypeError, ArithmeticError):
        return False


def _fits(v: tuple[str, Any]) -> bool:
    """The value has its type's JSON shape (an integer is a whole number, a Coding an object, …)."""
    kind, value = v
    if kind == "valueBoolean":
        return isinstance(value, bool)
    if kind == "valueInteger":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "valueDecimal":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("valueCoding", "valueQuantity", "valueReference", "valueAttachment"):
        return isinstance(value, dict)
    return isinstance(value, str)


def _show(v: tuple[str, Any]) -> str:
    value = v[1]
    if isinstance(value, dict) and "code" in value:
        return f"{value.get('system', '')}#{value['code']}" if value.get("system") else str(value["code"])
    return str(value)


def _all_items(items: Any) -> Iterator[dict[str, Any]]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            yield item
            yield from _all_items(item.get("item"))
            for answer in as_list(item.get("answer")):
                if isinstance(answer, dict):
                    yield from _all_items(answer.get("item"))
