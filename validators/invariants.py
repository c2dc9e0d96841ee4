"""Invariants: FHIRPath via fhirpathpy (each expression parsed once), and the base invariants in Python.

fhirpathpy lacks `resolve()`, `hasValue()` and `htmlChecks()`; they are supplied here. The base
invariants that apply to almost every document (ele-1, ext-1, dom-*, bdl-*, cmp-*, txt-*) are written
in Python: they are the hot path, and several need resolve() or HTML checks anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kroniker.validators import xhtml
from kroniker.validators.structure import Constraint

Resolver = Callable[[str], dict[str, Any] | None]


@dataclass
class EvalContext:
    resource: dict[str, Any]  # %resource: the resource holding the element
    root: dict[str, Any]  # %rootResource (the Bundle for entries)
    resolve: Resolver  # a reference string (as written at that place) → the resource it points to


class NotEvaluable(Exception):
    """The expression uses something fhirpathpy cannot do; reported, never silently passed."""


# -- Python base invariants --------------------------------------------------------------------------

def _items(v: Any) -> list[Any]:
    """A JSON array as a list; anything else (absent, or the wrong JSON type) as no items."""
    return v if isinstance(v, list) else []


def _has_value(v: Any) -> bool:
    return v is not None and v != "" and v != [] and v != {}


def ext_1(value: Any, ctx: EvalContext) -> bool:
    if not isinstance(value, dict):
        return True
    has_ext = bool(value.get("extension"))
    has_value = any(k.startswith("value") for k in value)
    return has_ext != has_value


def dom_2(value: Any, ctx: EvalContext) -> bool:
    return not any(isinstance(c, dict) and c.get("contained") for c in _items(value.get("contained")))


def dom_3(value: Any, ctx: EvalContext) -> bool:
    contained = [c for c in _items(value.get("contained")) if isinstance(c, dict)]
    if not contained:
        return True
    refs: set[str] = set()
    _collect_strings(value, refs)
    return all(f"#{c.get('id')}" in refs or "#" in refs for c in contained)


def _collect_strings(node: Any, out: set[str]) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            for k, v in n.items():
                if k == "contained":
                    continue
                if isinstance(v, str) and v.startswith("#"):
                    out.add(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(n, list):
            stack.extend(x for x in n if isinstance(x, (dict, list)))
        del n


def dom_4(value: Any, ctx: EvalContext) -> bool:
    for c in _items(value.get("contained")):
        meta = c.get("meta") if isinstance(c, dict) else None
        if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
            return False
    return True


def dom_5(value: Any, ctx: EvalContext) -> bool:
    for c in _items(value.get("contained")):
        meta = c.get("meta") if isinstance(c, dict) else None
        if isinstance(meta, dict) and meta.get("security"):
            return False
    return True


def dom_6(value: Any, ctx: EvalContext) -> bool:
    text = value.get("text")
    return isinstance(text, dict) and bool(text.get("div"))


def _btype(ctx: EvalContext, value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else None


def bdl_1(v: Any, ctx: EvalContext) -> bool:
    return "total" not in v or v.get("type") in ("searchset", "history")


def bdl_2(v: Any, ctx: EvalContext) -> bool:
    return v.get("type") == "searchset" or not any(isinstance(e, dict) and "search" in e for e in _entries(v))


def bdl_3(v: Any, ctx: EvalContext) -> bool:
    want = v.get("type") in ("batch", "transaction", "history")
    return all(("request" in e) == want for e in _entries(v))


def bdl_4(v: Any, ctx: EvalContext) -> bool:
    want = v.get("type") in ("batch-response", "transaction-response", "history")
    return all(("response" in e) == want for e in _entries(v))


def bdl_5(v: Any, ctx: EvalContext) -> bool:
    return not isinstance(v, dict) or any(k in v for k in ("resource", "request", "response"))


def bdl_7(v: Any, ctx: EvalContext) -> bool:
    if v.get("type") == "history":
        return True
    seen = set()
    for e in _entries(v):
        if "fullUrl" not in e:
            continue
        res = e.get("resource")
        meta = res.get("meta") if isinstance(res, dict) else None
        key = (str(e.get("fullUrl")), str(meta.get("versionId") if isinstance(meta, dict) else None))
        if key in seen:
            return False
        seen.add(key)
    return True


def bdl_8(v: Any, ctx: EvalContext) -> bool:
    return not isinstance(v, dict) or "/_history/" not in str(v.get("fullUrl", ""))


def bdl_9(v: Any, ctx: EvalContext) -> bool:
    if v.get("type") != "document":
        return True
    ident = v.get("identifier")
    return isinstance(ident, dict) and _has_value(ident.get("system")) and _has_value(ident.get("value"))


def bdl_10(v: Any, ctx: EvalContext) -> bool:
    return v.get("type") != "document" or _has_value(v.get("timestamp"))


def bdl_11(v: Any, ctx: EvalContext) -> bool:
    if v.get("type") != "document":
        return True
    entries = _entries(v)
    return bool(entries) and isinstance(entries[0].get("resource"), dict) and \
        entries[0]["resource"].get("resourceType") == "Composition"


def bdl_12(v: Any, ctx: EvalContext) -> bool:
    if v.get("type") != "message":
        return True
    entries = _entries(v)
    return bool(entries) and isinstance(entries[0].get("resource"), dict) and \
        entries[0]["resource"].get("resourceType") == "MessageHeader"


def _entries(v: Any) -> list[dict[str, Any]]:
    entries = v.get("entry") if isinstance(v, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def cmp_1(v: Any, ctx: EvalContext) -> bool:
    return not isinstance(v, dict) or any(k in v for k in ("text", "entry", "section"))


def cmp_2(v: Any, ctx: EvalContext) -> bool:
    return not isinstance(v, dict) or "emptyReason" not in v or "entry" not in v


def txt_1(v: Any, ctx: EvalContext) -> bool:
    if not isinstance(v, str):
        return True
    p = xhtml.check_narrative(v)
    return p.syntax is None and not p.active and not p.markup


def txt_2(v: Any, ctx: EvalContext) -> bool:
    if not isinstance(v, str):
        return True
    p = xhtml.check_narrative(v)
    return p.syntax is None and (bool(p.text.strip()) or p.has_image)


def con_3(v: Any, ctx: EvalContext) -> bool:
    # R4's con-3 compares a CodeableConcept with a string, which is never true, so it never fires in the
    # HL7 validator (spec/medcom-standards.md §18.9); fhirpathpy evaluates the comparison differently and
    # would fire. kroniker follows the HL7 validator here; the send protocol's intent is checked by the
    # prose rule CL-COND-CLINICALSTATUS-PLI instead.
    return True


PYTHON_INVARIANTS: dict[str, Callable[[Any, EvalContext], bool]] = {
    "con-3": con_3,
    "ext-1": ext_1, "dom-2": dom_2, "dom-3": dom_3, "dom-4": dom_4, "dom-5": dom_5, "dom-6": dom_6,
    "bdl-1": bdl_1, "bdl-2": bdl_2, "bdl-3": bdl_3, "bdl-4": bdl_4, "bdl-5": bdl_5, "bdl-7": bdl_7,
    "bdl-8": bdl_8, "bdl-9": bdl_9, "bdl-10": bdl_10, "bdl-11": bdl_11, "bdl-12": bdl_12,
    "cmp-1": cmp_1, "cmp-2": cmp_2, "txt-1": txt_1, "txt-2": txt_2,
}
# Compile FHIRPath to Python (tests switch it off to compare with fhirpathpy).
COMPILE = True

# ele-1 is checked by the walk itself for every element (snapshot or not).
WALK_INVARIANTS = frozenset({"ele-1"})


# -- FHIRPath through fhirpathpy ------------------------------------------------------------------------

class FhirPath:
    """Evaluates invariants: Python for the base ones, compiled FHIRPath for the rest, fhirpathpy as fallback."""

    def __init__(self) -> None:
        self._compiled: dict[str, Any] = {}
        self._parsed: dict[str, Any] = {}
        self.fallbacks: set[str] = set()  # keys evaluated by fhirpathpy (the benchmark reports them)
        self.compiled_keys: set[str] = set()

    def _compile(self, c: Constraint) -> Any:
        hit = self._compiled.get(c.expression or "")
        if hit is None:
            from kroniker.validators.fhirpath import Unsupported, compile_expression

            try:
                hit = compile_expression(c.expression or "")
            except Unsupported as exc:
                hit = exc
            self._compiled[c.expression or ""] = hit
        return hit

    def evaluate(self, c: Constraint, value: Any, base_path: str, ctx: EvalContext) -> bool:
        """True when the invariant holds; raises NotEvaluable when it cannot be evaluated here."""
        fn = PYTHON_INVARIANTS.get(c.key)
        if fn is not None:
            return fn(value, ctx)
        if not c.expression:
            raise NotEvaluable("no expression")
        compiled = self._compile(c) if COMPILE else None
        if compiled is not None and not isinstance(compiled, Exception):
            from kroniker.validators.fhirpath import Env, EvalError

            try:
                result = compiled(value, Env(value, ctx.resource, ctx.root, ctx.resolve, _html_ok))
            except EvalError:
                result = None  # let fhirpathpy have its say on an unusual instance
            if result is not None:
                self.compiled_keys.add(c.key)
                return _verdict(result)
        return self._fhirpathpy(c, value, base_path, ctx)

    def _fhirpathpy(self, c: Constraint, value: Any, base_path: str, ctx: EvalContext) -> bool:
        parsed = self._parse(c.expression or "")
        if isinstance(parsed, NotEvaluable):
            raise parsed
        self.fallbacks.add(c.key)
        from fhirpathpy import apply_parsed_path
        from fhirpathpy.engine.nodes import ResourceNode
        from fhirpathpy.models import models

        def resolve(inputs: list[Any]) -> list[Any]:
            out = []
            for i in inputs:
                ref = i.get("reference") if isinstance(i, dict) else i if isinstance(i, str) else None
                if ref:
                    target = ctx.resolve(ref)
                    if target is not None:
                        out.append(target)
            return out

        def has_value(inputs: list[Any]) -> list[bool]:
            return [len(inputs) == 1 and not isinstance(inputs[0], (dict, list)) and inputs[0] is not None]

        def html_checks(inputs: list[Any]) -> list[bool]:
            return [all(txt_1(i, ctx) for i in inputs)]

        table = {
            "resolve": {"fn": resolve, "arity": {0: []}},
            "hasValue": {"fn": has_value, "arity": {0: []}},
            "htmlChecks": {"fn": html_checks, "arity": {0: []}},
        }
        node = ResourceNode.create_node(value, base_path)
        try:
            result = apply_parsed_path(node, parsed, {"resource": ctx.resource, "rootResource": ctx.root},
                                       models["r4"], {"userInvocationTable": table})
        except RecursionError:
            raise NotEvaluable("expression too deep") from None
        except Exception as exc:  # fhirpathpy raises plain Exceptions for unsupported functions
            raise NotEvaluable(f"{type(exc).__name__}: {exc}") from None
        return _verdict(result)

    def _parse(self, expression: str) -> Any:
        hit = self._parsed.get(expression)
        if hit is None:
            from fhirpathpy.parser import parse

            # fhirpathpy does not bind $this at the top level; there it is the focus anyway.
            expr = expression.strip()
            expr = expr[len("$this."):] if expr.startswith("$this.") else expr
            try:
                hit = parse(expr)
            except Exception as exc:  # fhirpathpy's parser raises bare Exceptions
                hit = NotEvaluable(f"cannot parse: {exc}")
            self._parsed[expression] = hit
        return hit


def _html_ok(div: Any) -> bool:
    return txt_1(div, None)  # type: ignore[arg-type]


def _verdict(result: Any) -> bool:
    """An invariant holds when its expression is true; an empty result does not violate it."""
    if not result:
        return True
    return all(r is True for r in result) if all(isinstance(r, bool) for r in result) else bool(result)
