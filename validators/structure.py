"""Compiled element definitions: a StructureDefinition snapshot (or a base type) as a tree of Elem."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class _Missing(enum.Enum):
    """No fixed or pattern value (an enum member, so it keeps its identity through pickling)."""

    MISSING = 0


MISSING: Any = _Missing.MISSING

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
BASE_SD = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True, slots=True)
class TypeRef:
    code: str
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    aggregation: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    severity: str
    human: str
    expression: str | None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[tuple[str, str], ...]  # (type, path)
    rules: str  # open | closed | openAtEnd
    ordered: bool = False


@dataclass(eq=False, slots=True)
class Elem:
    """One element definition, with its children and slices, ready for the walk."""

    id: str
    path: str
    name: str
    min: int
    max: int | None  # None = unbounded
    types: tuple[TypeRef, ...] = ()
    fixed: Any = MISSING
    pattern: Any = MISSING
    binding: tuple[str, str] | None = None  # (strength, value set canonical)
    constraints: tuple[Constraint, ...] = ()
    slicing: Slicing | None = None
    slices: list[Elem] = field(default_factory=list)
    slice_name: str | None = None
    children: dict[str, Elem] = field(default_factory=dict)
    content_ref: str | None = None
    source: str = ""  # url|version of the StructureDefinition, or "fhir-base"
    base_path: str = ""
    max_length: int | None = None
    enum: tuple[str, ...] | None = None  # base code list (from fhir.resources) when no value set is known
    owner: Structure | None = field(default=None, repr=False)

    @property
    def type_codes(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.types)

    @property
    def ref(self) -> str:
        return f"{self.source}#{self.id}"

    @property
    def is_list(self) -> bool:
        return self.max is None or self.max > 1 or self.base_is_list

    base_is_list: bool = False
    choice: bool = False

    def __post_init__(self) -> None:
        self.choice = self.name.endswith("[x]")


@dataclass(eq=False, slots=True)
class Structure:
    """A compiled StructureDefinition: its root Elem and an index of its elements by id."""

    url: str
    version: str
    type: str
    kind: str
    root: Elem
    by_id: dict[str, Elem]
    abstract: bool = False
    derivation: str | None = None
    base_definition: str | None = None

    @property
    def label(self) -> str:
        return f"{self.url}|{self.version}" if self.version else self.url


def _type_code(t: dict[str, Any]) -> str:
    code = t.get("code", "")
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or "string"
        return "string"
    return code


def _value_of(e: dict[str, Any], prefix: str) -> Any:
    for k, v in e.items():
        if k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper():
            return v
    return MISSING


def compile_structure(sd: dict[str, Any], *, base_is_list: Any = None) -> Structure:
    """Compile a StructureDefinition's snapshot into an Elem tree (children by name, slices by parent)."""
    elements = (sd.get("snapshot") or {}).get("element") or []
    if not elements:
        raise ValueError(f"{sd.get('url')}: no snapshot")
    source = f"{sd['url']}|{sd.get('version', '')}" if sd.get("version") else sd["url"]
    by_id: dict[str, Elem] = {}
    root: Elem | None = None
    struct = Structure(sd["url"], sd.get("version", ""), sd.get("type", ""), sd.get("kind", ""),
                       None, by_id, bool(sd.get("abstract")), sd.get("derivation"),  # type: ignore[arg-type]
                       sd.get("baseDefinition"))
    for e in elements:
        eid = e.get("id") or e["path"]
        path = e["path"]
        last = eid.rsplit(".", 1)[-1] if "." in eid else eid
        name, _, slice_name = last.partition(":")
        mx = e.get("max", "*")
        binding = e.get("binding")
        bnd = None
        if binding and binding.get("valueSet") and binding.get("strength") in ("required", "extensible",
                                                                               "preferred", "example"):
            bnd = (binding["strength"], binding["valueSet"])
        base = e.get("base") or {}
        elem = Elem(
            id=eid,
            path=path,
            name=name,
            min=int(e.get("min", 0)),
            max=None if mx == "*" else int(mx),
            types=tuple(TypeRef(_type_code(t), tuple(t.get("profile", [])), tuple(t.get("targetProfile", [])),
                                tuple(t.get("aggregation", []))) for t in e.get("type", [])),
            fixed=_value_of(e, "fixed"),
            pattern=_value_of(e, "pattern"),
            binding=bnd,
            constraints=tuple(Constraint(c["key"], c.get("severity", "error"), c.get("human", ""),
                                         c.get("expression"), c.get("source"))
                              for c in e.get("constraint", []) if c["key"] != "ele-1"),  # the walk checks ele-1
            slicing=_slicing(e.get("slicing")),
            slice_name=e.get("sliceName") or (slice_name or None),
            content_ref=(e.get("contentReference") or None),
            source=source,
            base_path=base.get("path", path),
            max_length=e.get("maxLength"),
            owner=struct,
        )
        elem.base_is_list = base.get("max", mx) not in ("0", "1")
        by_id[eid] = elem
        if root is None:
            root = elem
            continue
        parent_id = eid.rsplit(".", 1)[0]
        if ":" in last:
            # A slice: it hangs off the element it slices (same id without ":slice").
            sliced = by_id.get(eid[: eid.rfind(":")])
            if sliced is not None:
                sliced.slices.append(elem)
                continue
        parent = by_id.get(parent_id)
        if parent is not None:
            parent.children.setdefault(name, elem)
    assert root is not None
    struct.root = root
    return struct


def _slicing(s: dict[str, Any] | None) -> Slicing | None:
    if not s:
        return None
    return Slicing(tuple((d.get("type", "value"), d.get("path", "$this")) for d in s.get("discriminator", [])),
                   s.get("rules", "open"), bool(s.get("ordered", False)))


def base_type_of_profile(url: str) -> str | None:
    """`http://hl7.org/fhir/StructureDefinition/Patient|4.0.1` → `Patient` (a base definition)."""
    u = url.split("|", 1)[0]
    if u.startswith(BASE_SD):
        return u[len(BASE_SD):]
    return None
