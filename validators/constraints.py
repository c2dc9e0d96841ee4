"""One small function per kind of constraint; each yields findings for one value of one element."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Generator, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kroniker.validators import base, codes, findings
from kroniker.validators.findings import Finding, JsonPath, Severity
from kroniker.validators.invariants import WALK_INVARIANTS, NotEvaluable
from kroniker.validators.structure import MISSING, Constraint, Elem
from kroniker.validators.terminology import Membership

if TYPE_CHECKING:
    from kroniker.validators.engine import _State
    from kroniker.validators.references import Entry

_SURROGATE = re.compile("[\ud800-\udfff]")
_SEVERITY = {"error": Severity.ERROR, "warning": Severity.WARNING, "information": Severity.INFORMATION,
             "fatal": Severity.FATAL}

# Invariants of base datatypes that snapshots do not carry on the elements that use them.
TYPE_INVARIANTS: dict[str, tuple[Constraint, ...]] = {
    "Period": (Constraint("per-1", "error", "If present, start SHALL have a lower value than end",
                          "start.hasValue().not() or end.hasValue().not() or (start <= end)"),),
    "Attachment": (Constraint("att-1", "error", "If the Attachment has data, it SHALL have a contentType",
                              "data.empty() or contentType.exists()"),),
    "Extension": (Constraint("ext-1", "error", "Must have either extensions or value[x], not both",
                             "extension.exists() != value.exists()"),),
}


def finding(severity: Severity, code: str, loc: str, path: JsonPath, elem: Elem | None, *,
            message_key: str | None = None, **params: Any) -> Finding:
    """A finding of a constraint, naming the profile element (`url|version#id`) that demands it."""
    return findings.finding(severity, code, loc, path, params, message_key=message_key,
                            profile_element=elem.ref if elem is not None else None)


# -- shape and cardinality ------------------------------------------------------------------------------
# What the walk meets as it reads a JSON object against its element definitions.

# Capitalised type name as it appears in a choice element's JSON key → FHIR type code.
CHOICE_SUFFIX: dict[str, str] = {c[0].upper() + c[1:]: c
                                 for c in (*base.PRIMITIVES, *base.DATATYPES_COMPLEX, "Reference")}


def object_expected(elem: Elem | None, expected: str, value: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
    """A complex element (or a primitive's extension, or a resource) given as something other than an object."""
    yield finding(Severity.ERROR, "type", loc, path, elem, message_key="type-object", expected=expected,
                  found=json_kind(value))


def null_value(elem: Elem, path: JsonPath, loc: str) -> Iterator[Finding]:
    """A null where a value (or its extension) should be: JSON's null is no FHIR value."""
    yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="null-value")


def unknown_member(stems: dict[str, Elem], name: str, key: str, path: JsonPath, loc: str, owner: str) -> Finding:
    """A JSON member no element definition has: a choice of a type the element does not allow, or unknown."""
    for stem, child in stems.items():  # valueString where only valueQuantity is allowed
        if name.startswith(stem) and name[len(stem):] in CHOICE_SUFFIX:
            return finding(Severity.ERROR, "type", f"{loc}.{name}", (*path, key), child, message_key="type-choice",
                           found=name, expected=", ".join(stem + c[0].upper() + c[1:] for c in child.type_codes))
    return finding(Severity.ERROR, "unknown-element", f"{loc}.{key}", (*path, key), None,
                   name=key, parent=owner or loc.rsplit(".", 1)[-1])


def choice_repeated(elem: Elem, name: str, path: JsonPath, loc: str) -> Iterator[Finding]:
    """A choice element given in a second type (valueString and valueQuantity): at most one value."""
    yield finding(Severity.ERROR, "card-max", f"{loc}.{name}", (*path, name), elem, max=1, count=2,
                  element=elem.path)


def absent(elem: Elem, name: str, path: JsonPath, loc: str) -> Iterator[Finding]:
    """An element that is not there at all: its minimum cardinality, and that of each of its slices."""
    if elem.min > 0:
        yield finding(Severity.ERROR, "card-min", f"{loc}.{name}", (*path, name), elem, min=elem.min, count=0,
                      element=elem.path)
    for s in elem.slices:
        if s.min > 0:
            yield finding(Severity.ERROR, "slice-card-min", f"{loc}.{name}", (*path, name), s, slice=s.slice_name,
                          min=s.min, count=0, element=elem.path)


def array_shape(elem: Elem, raw: Any, pext: Any, path: JsonPath, loc: str, name: str) -> Iterator[Finding]:
    """FHIR JSON: a repeating element is an array, never empty; a single-valued one is not an array."""
    where, at = f"{loc}.{name}", (*path, name)
    if isinstance(raw, list) or (raw is None and isinstance(pext, list)):
        if not elem.is_list:
            yield finding(Severity.ERROR, "datatype", where, at, elem, message_key="not-single", element=elem.path)
        if raw == [] or pext == []:
            yield finding(Severity.ERROR, "datatype", where, at, elem, message_key="empty-array")
    elif elem.is_list and raw is not None:
        yield finding(Severity.ERROR, "datatype", where, at, elem, message_key="not-array", element=elem.path)


def cardinality(elem: Elem, count: int, path: JsonPath, loc: str, name: str) -> Iterator[Finding]:
    """How many values an element has, against its min..max."""
    if count < elem.min:
        yield finding(Severity.ERROR, "card-min", f"{loc}.{name}", (*path, name), elem, min=elem.min, count=count,
                      element=elem.path)
    if elem.max is not None and count > elem.max:
        yield finding(Severity.ERROR, "card-max", f"{loc}.{name}", (*path, name), elem, max=elem.max, count=count,
                      element=elem.path)


def json_kind(v: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


# -- extensions and resources -------------------------------------------------------------------------

def extension_unknown(url: str, path: JsonPath, loc: str) -> Iterator[Finding]:
    """An extension whose definition no installed package has: it cannot be checked offline."""
    yield finding(Severity.WARNING, "extension-unknown", loc, path, None, url=url)


def entry_resource(state: _State, elem: Elem, entry: Entry, rtype: Any, path: JsonPath,
                   loc: str) -> Iterator[Finding]:
    """Bundle.entry.resource: the resource types the element allows and, when the walk is only asking whether
    a resource conforms, the profiles it demands of them (else the walk requires them, to check them once)."""
    if not state.silent:
        for t in elem.types:
            if t.code in (rtype, "Resource") and t.profiles:
                for p in t.profiles:
                    state.walk.require(entry, p, loc)
    else:
        for t in elem.types:
            if t.code == rtype:
                for p in t.profiles:
                    if not state.walk.conforms(entry, p):
                        yield finding(Severity.ERROR, "target-profile", loc, path, elem, expected=p, found=rtype)
    allowed = {t.code for t in elem.types}
    if allowed and "Resource" not in allowed and rtype not in allowed:
        yield finding(Severity.ERROR, "type", loc, path, elem, expected=", ".join(sorted(allowed)), found=rtype)


def resource_type_known(elem: Elem, rtype: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
    """A contained resource's resourceType names a FHIR R4 resource."""
    if not isinstance(rtype, str) or rtype not in base.resource_types():
        yield finding(Severity.ERROR, "unknown-resource-type", loc, path, elem, found=rtype)


def base_unavailable(elem: Elem, rtype: str, path: JsonPath, loc: str) -> Iterator[Finding]:
    """No definition at all to check a contained resource against: said, not passed silently."""
    yield finding(Severity.WARNING, "profile-unknown", loc, path, elem, message_key="base-unavailable", found=rtype)


# -- primitives ---------------------------------------------------------------------------------------

def primitive(elem: Elem, type_code: str, value: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
    """A primitive value: its JSON type, R4's regular expression, and what a regex cannot say."""
    if type_code == "boolean":
        ok = isinstance(value, bool)
    elif type_code in ("integer", "unsignedInt", "positiveInt", "integer64"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_code == "decimal":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="datatype-json",
                      type=type_code, found=_short(value))
        return
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if type_code in ("integer", "unsignedInt", "positiveInt") and not (-(2**31) <= value < 2**31):
            yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="datatype-range",
                          type=type_code, found=value)
        elif (type_code == "unsignedInt" and value < 0) or (type_code == "positiveInt" and value < 1):
            yield finding(Severity.ERROR, "datatype", loc, path, elem, type=type_code, found=value)
        return
    if value == "":
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="empty-string", type=type_code)
        return
    if _SURROGATE.search(value):
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="datatype-unicode", type=type_code)
        return
    if type_code in ("string", "markdown") and not value.strip():
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="blank-string", type=type_code,
                      found=value)
        return
    rx = base.PRIMITIVE_RE.get(type_code)
    # base64Binary: R4's regex backtracks for seconds on megabytes; decoding says the same, in linear time.
    if rx is not None and type_code not in ("string", "markdown", "xhtml", "base64Binary") \
            and not rx.fullmatch(value):
        yield finding(Severity.ERROR, "datatype", loc, path, elem, type=type_code, found=_short(value))
        return
    if type_code in ("date", "dateTime", "instant") and not _real_date(value):
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="datatype-date", type=type_code,
                      found=value)
    elif type_code == "base64Binary" and not _base64_ok(value):
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="datatype-base64",
                      type=type_code, found=_short(value))
    if elem.max_length and len(value) > elem.max_length:
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="too-long-value",
                      max=elem.max_length, count=len(value))
    if type_code in ("string", "markdown") and len(value) > 1024 * 1024:
        yield finding(Severity.ERROR, "datatype", loc, path, elem, message_key="too-long-value",
                      max=1024 * 1024, count=len(value))


@lru_cache(maxsize=32)
def _base64_ok(value: str) -> bool:
    """Valid base64 (the note is checked once though several profiles name its element)."""
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _real_date(value: str) -> bool:
    """A regex passes 2026-02-30; the calendar does not."""
    date_part = value[:10]
    if len(date_part) < 10:
        return True
    try:
        dt.date(int(date_part[:4]), int(date_part[5:7]), int(date_part[8:10]))
    except ValueError:
        return False
    return True


def _short(v: Any) -> Any:
    if isinstance(v, str) and len(v) > 80:
        return v[:77] + "..."
    return v


# -- content ------------------------------------------------------------------------------------------

def element_has_content(elem: Elem, value: dict[str, Any], path: JsonPath, loc: str) -> Iterator[Finding]:
    """ele-1: every element has a value or children (an empty object, or one with only an id, has neither)."""
    if not any(k not in ("id", "fhir_comments") for k in value):
        yield finding(Severity.ERROR, "invariant:ele-1", loc, path, elem, key="ele-1",
                      human="All FHIR elements must have a @value or children")


# -- fixed and pattern values -------------------------------------------------------------------------

def fixed_pattern(elem: Elem, value: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
    if elem.fixed is not MISSING and value != elem.fixed:
        yield finding(Severity.ERROR, "fixed-value", loc, path, elem, expected=elem.fixed, found=_short(value))
    if elem.pattern is not MISSING and not contains(value, elem.pattern):
        yield finding(Severity.ERROR, "pattern-value", loc, path, elem, expected=elem.pattern, found=_short(value))


def contains(value: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: everything in the pattern is in the value (lists: each item somewhere)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and contains(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return all(any(contains(v, p) for v in value) for p in pattern)
    return value == pattern


# -- bindings -----------------------------------------------------------------------------------------

def binding(state: _State, elem: Elem, type_code: str, value: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
    """Required → error, extensible → warning; what cannot be checked offline → a warning that says so."""
    b = elem.binding
    if b is not None:
        strength, vs_url = b
    elif elem.enum and type_code == "code":
        strength, vs_url = "required", f"(base code list of {elem.base_path})"
    else:
        return
    if strength not in ("required", "extensible"):
        return
    if type_code not in ("code", "Coding", "CodeableConcept"):
        return
    enum = elem.enum or state.profiles.element_enum(elem.base_path)
    exp = state.profiles.terminology.expand(vs_url, enum if type_code == "code" else None)
    coded: list[tuple[str | None, str]] = []
    if type_code == "code":
        verdict = exp.check_code(value) if isinstance(value, str) else Membership.NOT_IN
        found: Any = value
    else:
        raw_codings = value.get("coding") if type_code == "CodeableConcept" else [value]
        codings = raw_codings if isinstance(raw_codings, list) else []
        where: list[tuple[JsonPath, str]] = []
        for i, c in enumerate(codings):
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                system = c.get("system")
                coded.append((system if isinstance(system, str) else None, c["code"]))
                where.append(((*path, "coding", i), f"{loc}.coding[{i}]") if type_code == "CodeableConcept"
                             else (path, loc))
        found = [f"{s}|{c}" if s else c for s, c in coded] or value.get("text") or ""
        if not coded:
            if strength == "required" and type_code == "CodeableConcept":
                yield finding(Severity.ERROR, "binding", loc, path, elem, message_key="binding-no-code",
                              valueset=vs_url)
            return
        results = [exp.check(s, c) for s, c in coded]
        if Membership.IN in results:
            return
        # A code the value set draws from a whole code system, which that system's own rules say cannot
        # exist there (codes.py): named by that rule where it stands (an error for a required binding).
        named = {i: v for i, (s, c) in enumerate(coded) if results[i] is Membership.NOT_IN and s is not None
                 and s in exp.open_systems and (v := codes.check(s, c)) is not None}
        for i, v in named.items():
            sev = Severity.ERROR if strength == "required" else Severity.WARNING
            yield finding(sev, v.code, where[i][1], where[i][0], elem, message_key=v.message_key, **v.params)
        coded = [sc for i, sc in enumerate(coded) if i not in named]
        results = [r for i, r in enumerate(results) if i not in named]
        if not results:
            return
        verdict = Membership.UNKNOWN if Membership.UNKNOWN in results else Membership.NOT_IN
    if verdict is Membership.IN:
        return
    code = "binding" if strength == "required" else "binding-extensible"
    if verdict is Membership.UNKNOWN:
        systems = sorted({s for s, _ in coded if s} & exp.open_systems) or sorted(exp.open_systems)
        sev = Severity.WARNING if strength == "required" else Severity.INFORMATION
        yield finding(sev, code, loc, path, elem, message_key="binding-unchecked", valueset=vs_url,
                      found=found, systems=", ".join(systems) or vs_url)
        return
    if strength == "extensible" and coded and not ({s for s, _ in coded} & exp.systems):
        # Extensible allows a code from another code system when the value set has no suitable code;
        # only a reader can judge that, so it is information (as in the HL7 validator), not a warning.
        yield finding(Severity.INFORMATION, code, loc, path, elem, message_key="binding-other-system",
                      valueset=vs_url, found=found)
        return
    sev = Severity.ERROR if strength == "required" else Severity.WARNING
    yield finding(sev, code, loc, path, elem, valueset=vs_url, found=found)


def coding(elem: Elem, value: dict[str, Any], path: JsonPath, loc: str) -> Iterator[Finding]:
    """A Coding in a code system whose codes can be judged offline (SNOMED CT, SKS-D, ICPC-2): a code that
    cannot exist there is a warning (binding() makes it an error where a required binding asks for that
    system); an SKS sub-division below the WHO code is information."""
    system, code = value.get("system"), value.get("code")
    if not isinstance(system, str) or system not in codes.SYSTEMS or not isinstance(code, str):
        return
    v = codes.check(system, code)
    if v is not None:
        yield finding(Severity.INFORMATION if v.possible else Severity.WARNING, v.code, loc, path, elem,
                      message_key=v.message_key, **v.params)


# -- invariants ---------------------------------------------------------------------------------------

def invariants(state: _State, elem: Elem, type_code: str, value: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
    seen: set[str] = set()
    extra = TYPE_INVARIANTS.get(type_code, ())
    for c in (*elem.constraints, *extra):
        if c.key in WALK_INVARIANTS or c.key in seen:
            continue
        seen.add(c.key)
        try:
            ok = state.profiles.fhirpath.evaluate(c, value, elem.path if c not in extra else type_code, state.ctx)
        except NotEvaluable as exc:
            yield finding(Severity.WARNING, f"invariant:{c.key}", loc, path, elem, message_key="invariant-unchecked",
                          key=c.key, human=c.human, reason=str(exc))
            continue
        if not ok:
            primitive_value = not isinstance(value, (dict, list))
            yield finding(_SEVERITY.get(c.severity, Severity.ERROR), f"invariant:{c.key}", loc, path, elem,
                          key=c.key, human=c.human, expression=c.expression or "",
                          found=_short(value) if primitive_value else None)


# -- references ---------------------------------------------------------------------------------------

def reference(state: _State, elem: Elem, value: dict[str, Any], path: JsonPath, loc: str) -> Iterator[Finding]:
    """Where a reference points and whether the target may be there: type and target profile."""
    ref = value.get("reference")
    if not isinstance(ref, str):
        return
    walk = state.walk
    target = walk.resolve(ref, state.entry)
    if not state.silent:
        from kroniker.validators.engine import RefRecord

        walk.references.append(RefRecord(state.entry, loc, path, ref, target))
    if target is None:
        return
    targets = [p for t in elem.types if t.code == "Reference" for p in t.targets]
    if not targets:
        return
    rtype = target.resource.get("resourceType")
    typed = [(p, state.profiles.type_of(p)) for p in targets]
    if any(t in ("Resource", None) for _, t in typed):
        candidates = [p for p, t in typed if t == rtype]
    else:
        allowed = sorted({t for _, t in typed if t})
        if rtype not in allowed:
            yield finding(Severity.ERROR, "target-profile", f"{loc}.reference", (*path, "reference"), elem,
                          message_key="target-type", expected=", ".join(allowed), found=f"{rtype} ({ref})")
            return
        candidates = [p for p, t in typed if t == rtype]
    candidates = [p for p in candidates if not p.startswith("http://hl7.org/fhir/StructureDefinition/")]
    if not candidates:
        return
    if len(candidates) == 1 and not state.silent:
        walk.require(target, candidates[0], loc)
        return
    if not any(walk.conforms(target, p) for p in candidates):
        yield finding(Severity.ERROR, "target-profile", f"{loc}.reference", (*path, "reference"), elem,
                      expected=" | ".join(c.split("|")[0] for c in candidates), found=f"{rtype} ({ref})")


# -- slicing ------------------------------------------------------------------------------------------

def slicing(state: _State, elem: Elem, type_code: str, items: list[Any], path: JsonPath, loc: str, name: str,
            indexed: bool) -> Generator[Finding, None, list[Elem | None]]:
    """Assign each item to its slice by the discriminators; slice cardinality; closed slicing."""
    assigned: list[Elem | None] = [None] * len(items)
    counts = {id(s): 0 for s in elem.slices}
    for i, v in enumerate(items):
        if v is None:
            continue
        for s in elem.slices:
            if matches_slice(state, elem, s, v, type_code):
                assigned[i] = s
                counts[id(s)] += 1
                break
    if not state.silent and elem.slicing is not None and \
            any(kind == "profile" for kind, _ in elem.slicing.discriminators):
        _assign_by_type(state, elem, items, assigned, counts)
    where = f"{loc}.{name}"
    for s in elem.slices:
        n = counts[id(s)]
        if n < s.min:
            yield finding(Severity.ERROR, "slice-card-min", where, (*path, name), s, slice=s.slice_name, min=s.min,
                          count=n, element=elem.path)
        if s.max is not None and n > s.max:
            yield finding(Severity.ERROR, "slice-card-max", where, (*path, name), s, slice=s.slice_name, max=s.max,
                          count=n, element=elem.path)
    if elem.slicing is not None and elem.slicing.rules == "closed":
        by_target = any("resolve()" in p for _, p in elem.slicing.discriminators)
        for i, v in enumerate(items):
            if v is not None and assigned[i] is None:
                if by_target and _resolved(state, v) is None:
                    continue  # a reference that does not resolve is reported once, as ref-unresolved
                yield finding(Severity.ERROR, "slice-unmatched", f"{where}[{i}]" if indexed else where,
                              (*path, name, i) if indexed else (*path, name), elem,
                              slices=", ".join(s.slice_name or "?" for s in elem.slices), element=elem.path)
    return assigned


def _assign_by_type(state: _State, elem: Elem, items: list[Any], assigned: list[Elem | None],
                    counts: dict[int, int]) -> None:
    """A reference that fails a profile discriminator only because its target has errors of its own.

    When exactly one slice takes the target's resource type, the item goes there and the target is
    held to the slice's profile: its errors are reported once, on the target, instead of cascading
    into a slicing error here (an Organization without a name is ORG-NAME, not a missing author).
    """
    for i, v in enumerate(items):
        if v is None or assigned[i] is not None:
            continue
        target = _resolved(state, v)
        if target is None:
            continue
        rtype = target.resource.get("resourceType")
        fitting = [s for s in elem.slices
                   if any(state.profiles.type_of(p) == rtype for t in s.types for p in t.targets)]
        if len(fitting) == 1:
            s = fitting[0]
            if s.max is not None and counts[id(s)] >= s.max:
                continue
            assigned[i] = s
            counts[id(s)] += 1
            for t in s.types:
                for p in t.targets:
                    if state.profiles.type_of(p) == rtype:
                        state.walk.require(target, p, "slice")


def matches_slice(state: _State, elem: Elem, s: Elem, value: Any, type_code: str) -> bool:
    discs = elem.slicing.discriminators if elem.slicing else (("value", "url"),) if type_code == "Extension" else ()
    if not discs:
        return False
    return all(_match(state, s, kind, dpath, value, type_code) for kind, dpath in discs)


def _match(state: _State, s: Elem, kind: str, dpath: str, value: Any, type_code: str) -> bool:
    dpath = dpath.strip()
    if kind in ("value", "pattern"):
        target = _descend(state, s, dpath, type_code)
        actual = _values_at(value, dpath)
        if target is not None:
            if target.fixed is not MISSING:
                return any(a == target.fixed for a in actual)
            if target.pattern is not MISSING:
                return any(contains(a, target.pattern) for a in actual)
            if target.binding and target.binding[0] == "required":
                exp = state.profiles.terminology.expand(target.binding[1])
                return any(isinstance(a, str) and exp.check_code(a) is Membership.IN for a in actual)
        if dpath == "url":
            urls = [p for t in s.types for p in t.profiles]
            return any(a in urls or a in (u.split("|")[0] for u in urls) for a in actual)
        return False
    if kind == "exists":
        target = _descend(state, s, dpath, type_code)
        present = bool(_values_at(value, dpath))
        return present if target is None or target.min > 0 else not present if target.max == 0 else present
    if kind == "type":
        if dpath in ("$this", ""):
            return type_code in s.type_codes or (isinstance(value, dict) and value.get("resourceType") in s.type_codes)
        if dpath in ("$this.resolve()", "resolve()"):
            entry = _resolved(state, value)
            if entry is None:
                return False
            rtype = entry.resource.get("resourceType")
            return any(state.profiles.type_of(p) == rtype for t in s.types for p in t.targets)
        sub = _descend(state, s, dpath.removeprefix("$this."), type_code)
        actual = _values_at(value, dpath.removeprefix("$this."))
        if sub is None:
            return False
        return any(isinstance(a, dict) and a.get("resourceType") in sub.type_codes for a in actual)
    if kind == "profile":
        if dpath in ("$this.resolve()", "resolve()"):
            entry = _resolved(state, value)
            if entry is None:
                return False
            return any(state.walk.conforms(entry, p) for t in s.types for p in t.targets)
        return False
    return False


def _resolved(state: _State, value: Any) -> Entry | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    return state.walk.resolve(ref, state.entry) if isinstance(ref, str) else None


def _descend(state: _State, s: Elem, dpath: str, type_code: str) -> Elem | None:
    if dpath in ("$this", ""):
        return s
    el: Elem | None = s
    code = s.types[0].code if s.types else type_code
    for part in dpath.split("."):
        if el is None:
            return None
        children = state.children_of(el, code)
        nxt = children.get(part)
        if nxt is None:
            nxt = children.get(part + "[x]")
        el = nxt
        code = el.types[0].code if el is not None and el.types else code
    return el


def _values_at(value: Any, dpath: str) -> list[Any]:
    current = [value]
    if dpath in ("$this", ""):
        return current
    for part in dpath.removeprefix("$this.").split("."):
        nxt: list[Any] = []
        for c in current:
            if isinstance(c, dict) and part in c:
                v = c[part]
                nxt.extend(v if isinstance(v, list) else [v])
        current = nxt
    return current
