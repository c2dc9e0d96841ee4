"""The walk: each resource of a document, once per profile, element by element.

The engine only walks and descends; each kind of constraint is a small function in
`kroniker.validators.constraints` that yields findings.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from kroniker.validators import base, constraints
from kroniker.validators.findings import Finding, JsonPath, Severity
from kroniker.validators.invariants import EvalContext
from kroniker.validators.profiles import ProfileSet
from kroniker.validators.references import BundleIndex, Entry
from kroniker.validators.structure import MISSING, Elem, Structure

IGNORED_KEYS = frozenset({"fhir_comments"})


@dataclass
class RefRecord:
    source: Entry
    loc: str
    path: JsonPath
    reference: str
    target: Entry | None


@dataclass
class Walk:
    """State for validating one document against one profile set."""

    profiles: ProfileSet
    bundle: dict[str, Any]
    entries: list[Entry]
    trusted: frozenset[int] = frozenset()  # id() of resources already validated error-free elsewhere
    references: list[RefRecord] = field(default_factory=list)
    required: list[tuple[Entry, str, str]] = field(default_factory=list)  # (entry, profile, why)
    _done: set[tuple[int, str]] = field(default_factory=set)
    _conforms: dict[tuple[int, str], bool] = field(default_factory=dict)
    _in_progress: set[tuple[int, str]] = field(default_factory=set)
    _results: dict[tuple[int, str], list[Finding]] = field(default_factory=dict)
    _contained_entries: dict[tuple[int, str], Entry] = field(default_factory=dict)
    index: BundleIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = BundleIndex(self.entries)

    # -- references ------------------------------------------------------------------------------
    def resolve(self, ref: str, source: Entry) -> Entry | None:
        """A reference as written in `source`: a contained `#id`, or an entry by FHIR's Bundle rules."""
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("#"):
            return self._contained(source, ref[1:])
        return self.index.resolve(ref, source)

    def _contained(self, source: Entry, rid: str) -> Entry | None:
        """A contained resource of `source` as an entry of its own (same object each time it is asked for)."""
        key = (id(source), rid)
        hit = self._contained_entries.get(key)
        if hit is not None:
            return hit
        contained = source.resource.get("contained")
        for i, r in enumerate(contained if isinstance(contained, list) else []):
            if isinstance(r, dict) and r.get("id") == rid:
                hit = Entry(None, r, (*source.path, "contained", i), f"{source.loc}.contained[{i}]")
                self._contained_entries[key] = hit
                return hit
        return None

    def context(self, entry: Entry) -> EvalContext:
        def resolve(ref: str) -> dict[str, Any] | None:
            target = self.resolve(ref, entry)
            return target.resource if target else None

        return EvalContext(entry.resource, self.bundle, resolve)

    # -- requirements and conformance -------------------------------------------------------------
    def require(self, entry: Entry, profile: str, why: str) -> None:
        self.required.append((entry, profile, why))

    def conforms(self, entry: Entry, profile: str) -> bool:
        """Does a resource conform to a profile (no errors)? Cached; cycles count as conforming.

        The answer comes from the resource's full check against that profile, which is kept: the
        document's own walk reuses it, so no resource is walked twice against one profile.
        """
        key = (id(entry), profile.split("|", 1)[0])
        if key in self._conforms:
            return self._conforms[key]
        if key in self._in_progress:
            return True
        struct = self.profiles.structure(profile)
        if struct is None:
            return False
        if entry.resource.get("resourceType") != struct.type:
            self._conforms[key] = False
            return False
        ok = not any(f.severity >= Severity.ERROR for f in self.full(entry, struct))
        self._conforms[key] = ok
        return ok

    def full(self, entry: Entry, struct: Structure) -> list[Finding]:
        """Every finding for a resource against a profile, computed once per document."""
        key = (id(entry), struct.url)
        hit = self._results.get(key)
        if hit is None and id(entry.resource) in self.trusted:
            hit = self._results[key] = []
        if hit is None:
            self._in_progress.add(key)
            try:
                hit = list(self.check_resource(entry, struct))
            finally:
                self._in_progress.discard(key)
            self._results[key] = hit
        return hit

    # -- the walk -------------------------------------------------------------------------------------
    def check_resource(self, entry: Entry, struct: Structure, *, silent: bool = False) -> Iterator[Finding]:
        """Every finding for one resource against one compiled profile (or base definition)."""
        ctx = self.context(entry)
        state = _State(self, entry, ctx, silent)
        yield from state.item(struct.root, struct.type, entry.resource, None, entry.path, entry.loc)


class _State:
    """The walk of one resource: knows its entry, its evaluation context and whether it is silent."""

    def __init__(self, walk: Walk, entry: Entry, ctx: EvalContext, silent: bool) -> None:
        self.walk = walk
        self.entry = entry
        self.ctx = ctx
        self.silent = silent
        self.profiles = walk.profiles

    # children of an element, wherever they are defined
    def children_of(self, elem: Elem, type_code: str) -> dict[str, Elem]:
        if elem.children:
            return elem.children
        for t in elem.types:
            if t.code == type_code and t.profiles:
                struct = self.profiles.structure(t.profiles[0])
                if struct is not None and struct.root.children:
                    return struct.root.children
        if elem.content_ref:
            ref = elem.content_ref.split("#", 1)[-1]
            owner = elem.owner
            target = owner.by_id.get(ref) if owner else None
            if target is not None and target is not elem:
                return target.children or self.children_of(target, type_code)
        struct = self.profiles.base(type_code)
        return struct.root.children if struct else {}

    def item(self, elem: Elem, type_code: str, value: Any, pext: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
        """One value of an element: its own constraints, then its children."""
        # Each kind of constraint is looked at only where the element carries one (the hot path).
        if type_code in base.PRIMITIVE_CODES:
            if value is not None:
                yield from constraints.primitive(elem, type_code, value, path, loc)
                if elem.fixed is not MISSING or elem.pattern is not MISSING:
                    yield from constraints.fixed_pattern(elem, value, path, loc)
                if elem.binding is not None or elem.enum:
                    yield from constraints.binding(self, elem, type_code, value, path, loc)
                if elem.constraints:
                    yield from constraints.invariants(self, elem, type_code, value, path, loc)
            if pext is not None:
                yield from self.primitive_extension(pext, path, loc)
            return
        if not isinstance(value, dict):
            yield from constraints.object_expected(elem, type_code, value, path, loc)
            return
        yield from constraints.element_has_content(elem, value, path, loc)
        if elem.fixed is not MISSING or elem.pattern is not MISSING:
            yield from constraints.fixed_pattern(elem, value, path, loc)
        if elem.binding is not None:
            yield from constraints.binding(self, elem, type_code, value, path, loc)
        if type_code == "Coding":
            yield from constraints.coding(elem, value, path, loc)
        if elem.constraints or type_code in constraints.TYPE_INVARIANTS:
            yield from constraints.invariants(self, elem, type_code, value, path, loc)
        if type_code == "Reference":
            yield from constraints.reference(self, elem, value, path, loc)
        children = self.children_of(elem, type_code)
        if type_code == "Extension" and not any(t.profiles for t in elem.types):
            ext_children = yield from self.extension_definition(value, path, loc)
            if ext_children is not None:
                children = ext_children
        is_resource = type_code in base.resource_types() or type_code == "Resource"
        yield from self.children(children, value, path, loc, is_resource, elem.path or type_code)

    def extension_definition(self, value: dict[str, Any], path: JsonPath,
                             loc: str) -> Generator[Finding, None, dict[str, Elem] | None]:
        """An extension with no profile from its slice: find its definition by url (or say we cannot)."""
        url = value.get("url")
        if not isinstance(url, str):
            return None
        struct = self.profiles.structure(url) if self.profiles.knows(url) else None
        if struct is None:
            yield from constraints.extension_unknown(url, path, loc)
            return None
        return struct.root.children

    def primitive_extension(self, pext: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
        ext_struct = self.profiles.base("Element")
        if not isinstance(pext, dict):
            yield from constraints.object_expected(None, "Element", pext, path, loc)
            return
        if ext_struct is not None:
            ext_path = (*path[:-1], f"_{path[-1]}") if path and isinstance(path[-1], str) else path
            yield from self.children(ext_struct.root.children, pext, ext_path, loc, False)

    def children(self, children: dict[str, Elem], obj: dict[str, Any], path: JsonPath, loc: str,
                 is_resource: bool, owner: str = "") -> Iterator[Finding]:
        """Every member of a JSON object against the element definitions of its children."""
        idx = _child_index(self.profiles.child_indexes, children)
        seen: set[str] = set()
        choices: dict[str, int] = {}
        for key, raw in obj.items():
            if key in IGNORED_KEYS or (is_resource and key == "resourceType"):
                continue
            if key[:1] == "_":
                name = key[1:]
                if name in obj:
                    continue  # read together with its value
                raw, pext = None, obj[key]
            else:
                name = key
                pext = obj.get("_" + key)
            hit = idx.by_key.get(name)
            if hit is None:
                yield constraints.unknown_member(idx.stems, name, key, path, loc, owner)
                continue
            child, type_code = hit
            seen.add(child.name)
            if raw is None and pext is None:
                yield from constraints.null_value(child, (*path, name), f"{loc}.{name}")
                continue
            if child.choice:
                n = choices[child.name] = choices.get(child.name, 0) + 1
                if n == 2:
                    yield from constraints.choice_repeated(child, name, path, loc)
                for s in child.slices:  # a choice may be sliced by type (value[x]:valueQuantity)
                    if type_code in s.type_codes:
                        child = s
                        break
            yield from self.element_values(child, name, type_code, raw, pext, path, loc)
        for child in idx.required:
            if child.name in seen:
                continue
            name = child.name[:-3] if child.choice else child.name
            yield from constraints.absent(child, name, path, loc)

    def element_values(self, child: Elem, name: str, type_code: str, raw: Any, pext: Any, path: JsonPath,
                       loc: str) -> Iterator[Finding]:
        is_list = child.is_list
        if raw.__class__ is not list and pext.__class__ is not list and not is_list and raw is not None \
                and child.min <= 1 and child.slicing is None and not child.slices \
                and (type_code in base.PRIMITIVE_CODES or raw.__class__ is not dict or "resourceType" not in raw):
            # The common case, one value of a single-valued element: straight to the value.
            yield from self.item(child, type_code, raw, pext, (*path, name), f"{loc}.{name}")
            return
        items: list[Any]
        exts: list[Any]
        as_array = isinstance(raw, list) or (raw is None and isinstance(pext, list))
        # The constraint functions are only called where they may find something (the hot path).
        if as_array != is_list or raw == [] or pext == []:
            yield from constraints.array_shape(child, raw, pext, path, loc, name)
        if as_array:
            items = list(raw) if isinstance(raw, list) else [None] * len(pext)
            exts = list(pext) if isinstance(pext, list) else []
            exts += [None] * (len(items) - len(exts))
            indexed = True
        else:
            items, exts, indexed = [raw], [pext], False
        count = sum(1 for v, x in zip(items, exts, strict=False) if v is not None or x is not None)
        if count < child.min or (child.max is not None and count > child.max):
            yield from constraints.cardinality(child, count, path, loc, name)
        slices: list[Elem | None] = [None] * len(items)
        if child.slicing is not None or child.slices:
            slices = yield from constraints.slicing(self, child, type_code, items, path, loc, name, indexed)
        for i, (v, x) in enumerate(zip(items, exts, strict=False)):
            ipath: JsonPath = (*path, name, i) if indexed else (*path, name)
            iloc = f"{loc}.{name}[{i}]" if indexed else f"{loc}.{name}"
            if v is None and x is None:
                yield from constraints.null_value(child, ipath, iloc)
                continue
            target = slices[i] or child
            code = type_code
            if len(child.types) > 1 and not child.choice:
                code = _type_from_value(child, v) or type_code
            if code == "Resource" or (isinstance(v, dict) and code in base.resource_types()
                                      and isinstance(v.get("resourceType"), str)):
                yield from self.inline_resource(target, v, ipath, iloc)
                continue
            yield from self.item(target, code, v, x, ipath, iloc)

    def inline_resource(self, elem: Elem, value: Any, path: JsonPath, loc: str) -> Iterator[Finding]:
        """Bundle.entry.resource is validated as its own entry; a contained resource is walked here."""
        if not isinstance(value, dict):
            yield from constraints.object_expected(elem, "Resource", value, path, loc)
            return
        rtype = value.get("resourceType")
        if elem.base_path == "Bundle.entry.resource":
            entry = next((e for e in self.walk.entries if e.path == path), None)
            if entry is not None:
                yield from constraints.entry_resource(self, elem, entry, rtype, path, loc)
            return
        if not isinstance(rtype, str) or rtype not in base.resource_types():
            yield from constraints.resource_type_known(elem, rtype, path, loc)
            return
        # A contained resource is checked against the profile it declares (else its base definition), once:
        # a reference to it that demands the same profile reuses that check.
        declared = value.get("meta", {}).get("profile") if isinstance(value.get("meta"), dict) else None
        struct = None
        for p in declared if isinstance(declared, list) else []:
            if isinstance(p, str) and self.profiles.knows(p):
                struct = self.profiles.structure(p)
                if struct is not None and struct.type == rtype:
                    break
                struct = None
        struct = struct or self.profiles.base(rtype)
        if struct is None:
            yield from constraints.base_unavailable(elem, rtype, path, loc)
            return
        contained = self.walk._contained(self.entry, value["id"]) if isinstance(value.get("id"), str) and \
            path[-2:-1] == ("contained",) else None
        if contained is not None and contained.path == path and not self.silent:
            yield from self.walk.full(contained, struct)
            return
        yield from self.item(struct.root, rtype, value, None, path, loc)


@dataclass
class _ChildIndex:
    """The children of an element definition, looked up by the JSON key they appear under."""

    by_key: dict[str, tuple[Elem, str]]  # "valueQuantity" → (value[x], "Quantity"); "status" → (status, "code")
    stems: dict[str, Elem]  # choice stems, to tell a disallowed type from an unknown element
    required: list[Elem]  # children (or their slices) that must be there


def _child_index(indexes: dict[int, tuple[Any, Any]], children: dict[str, Elem]) -> _ChildIndex:
    """The index of `children`, kept in `indexes` (the ProfileSet's, so it lives and dies with the profiles)."""
    hit = indexes.get(id(children))
    if hit is not None and hit[0] is children:
        return hit[1]
    by_key: dict[str, tuple[Elem, str]] = {}
    stems: dict[str, Elem] = {}
    required: list[Elem] = []
    for name, child in children.items():
        if child.choice:
            stem = name[:-3]
            stems[stem] = child
            for code in child.type_codes:
                by_key[stem + code[0].upper() + code[1:]] = (child, code)
        else:
            by_key[name] = (child, child.types[0].code if child.types else "BackboneElement")
        if child.min > 0 or any(s.min > 0 for s in child.slices):
            required.append(child)
    idx = _ChildIndex(by_key, stems, required)
    indexes[id(children)] = (children, idx)  # the dict is kept alive with its index, so its id stays its own
    return idx


def _type_from_value(elem: Elem, value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value["resourceType"]
    return None

