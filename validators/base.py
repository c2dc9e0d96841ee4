"""The base FHIR structure of resources and datatypes, read from fhir.resources (R4B) and set to R4.

hl7.fhir.r4.core cannot be had here, so the structure of the base resources and datatypes that
profiles do not spell out (a datatype's children, an unprofiled resource) and the base code lists
(`enum_values`) come from fhir.resources. fhir.resources ships R4B, not R4, so every element is
kept to what R4 has, by fhirpathpy's R4 type model: R4B-only elements and resources are dropped,
choice elements take R4's type lists, and R4-only resources are reported as not checkable offline
(docs/r4b-vs-r4.md). Where a profile's snapshot exists it wins: snapshots are R4.
"""

from __future__ import annotations

import re
import typing
from functools import cache
from typing import Any

from kroniker.validators.structure import Elem, Structure, TypeRef

PRIMITIVES: dict[str, str] = {
    # R4 regular expressions for primitive values (http://hl7.org/fhir/R4/datatypes.html)
    "boolean": r"true|false",
    "integer": r"[0]|[-+]?[1-9][0-9]*",
    "string": r"[ \r\n\t\S]+",
    "decimal": r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    "uri": r"\S*",
    "url": r"\S*",
    "canonical": r"\S*",
    "base64Binary": r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+",
    "instant": r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
               r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))",
    "date": r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
    "dateTime": r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
                r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?",
    "time": r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?",
    "code": r"[^\s]+(\s[^\s]+)*",
    "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
    "id": r"[A-Za-z0-9\-\.]{1,64}",
    "markdown": r"\s*(\S|\s)*",
    "unsignedInt": r"[0]|([1-9][0-9]*)",
    "positiveInt": r"\+?[1-9][0-9]*",
    "uuid": r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "xhtml": r"(?s).*",
}
PRIMITIVE_RE = {k: re.compile(v) for k, v in PRIMITIVES.items()}
PRIMITIVE_CODES = frozenset([*PRIMITIVES, "integer64"])
NUMERIC = {"integer", "decimal", "unsignedInt", "positiveInt"}

# fhir.resources' annotation markers → FHIR primitive type codes.
_MARKERS = {
    "Boolean": "boolean", "Integer": "integer", "String": "string", "Decimal": "decimal", "Uri": "uri",
    "Url": "url", "Canonical": "canonical", "Base64Binary": "base64Binary", "Instant": "instant",
    "Date": "date", "DateTime": "dateTime", "Time": "time", "Code": "code", "Oid": "oid", "Id": "id",
    "Markdown": "markdown", "UnsignedInt": "unsignedInt", "PositiveInt": "positiveInt", "Uuid": "uuid",
    "Xhtml": "xhtml", "Integer64": "integer64", "UuidVersion": "uuid",
}

DATATYPES_COMPLEX = (
    "Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding", "ContactPoint", "Count",
    "Distance", "Duration", "HumanName", "Identifier", "Money", "Period", "Quantity", "Range", "Ratio",
    "Reference", "SampledData", "Signature", "Timing", "ContactDetail", "Contributor", "DataRequirement",
    "Expression", "ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext", "Dosage",
    "Meta", "Narrative", "Extension", "ElementDefinition", "MarketingStatus", "Population",
    "ProdCharacteristic", "ProductShelfLife", "SubstanceAmount", "Element", "BackboneElement",
    "MoneyQuantity", "SimpleQuantity",
)


@cache
def _r4_model() -> dict[str, Any]:
    from fhirpathpy.models import models

    return models["r4"]


# Module-level (not per Validator): R4's resource types cannot differ between Validators; a plan from the store
# may fill it in first, saving the import of fhirpathpy's R4 model (the plan's key covers fhirpathpy's files).
_RESOURCE_TYPES: list[frozenset[str]] = []


def resource_types() -> frozenset[str]:
    """The R4 resource types (from fhirpathpy's R4 model, not fhir.resources' R4B list)."""
    if not _RESOURCE_TYPES:
        t2p = _r4_model()["type2Parent"]
        _RESOURCE_TYPES.append(frozenset(k for k, v in t2p.items()
                                         if v in ("DomainResource", "Resource") and k[0].isupper()))
    return _RESOURCE_TYPES[0]


def preload_resource_types(types: frozenset[str]) -> None:
    """From a compiled plan: saves importing fhirpathpy's R4 model in a fresh process."""
    if not _RESOURCE_TYPES:
        _RESOURCE_TYPES.append(frozenset(types))


@cache
def _r4_paths() -> frozenset[str]:
    """Every R4 element path (choice elements as `x.value[x]`), from fhirpathpy's R4 model."""
    model = _r4_model()
    out: set[str] = set()
    choice_of = {}
    for base, types in model["choiceTypePaths"].items():
        for t in types:
            choice_of[base + t[0].upper() + t[1:]] = base + "[x]"
    for p in list(model["path2Type"]) + list(model["pathsDefinedElsewhere"]):
        p = choice_of.get(p, p)
        parts = p.split(".")
        for i in range(2, len(parts) + 1):
            out.add(".".join(parts[:i]))
    return frozenset(out)


def r4_choice_types(path: str) -> list[str] | None:
    """R4's type list for a choice element (`Extension.value`), or None if unknown."""
    types = _r4_model()["choiceTypePaths"].get(path)
    if not types:
        return None
    return [t[0].lower() + t[1:] if (t[0].lower() + t[1:]) in PRIMITIVES else t for t in types]


def is_primitive(code: str) -> bool:
    return code in PRIMITIVES or code == "integer64"


def _model(name: str) -> Any:
    import fhir.resources.R4B as r4b

    try:
        return r4b.get_fhir_model_class(name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def _field_types(annotation: Any) -> tuple[list[str], bool]:
    """(FHIR type codes, is a list) for a fhir.resources field annotation."""
    is_list = False
    codes: list[str] = []

    def visit(a: Any) -> None:
        nonlocal is_list
        origin = typing.get_origin(a)
        if origin is typing.Annotated:
            args = typing.get_args(a)
            for meta in args[1:]:
                code = _MARKERS.get(type(meta).__name__)
                if code:
                    codes.append(code)
                    return
            visit(args[0])
            return
        if origin in (list, typing.List):  # noqa: UP006
            is_list = True
            for x in typing.get_args(a):
                visit(x)
            return
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            for x in typing.get_args(a):
                visit(x)
            return
        if a is type(None):
            return
        if a is bool:  # fhir.resources writes boolean as a plain bool
            codes.append("boolean")
            return
        text = a if isinstance(a, str) else getattr(a, "__name__", str(a))
        m = re.search(r"(\w+?)Type$", text)
        if m:
            codes.append(m.group(1))

    visit(annotation)
    return codes, is_list


@cache
def base_structure(type_name: str) -> Structure | None:
    """The base definition of a resource, datatype or backbone element, as a compiled Structure."""
    model = None if is_primitive(type_name) else _model(type_name)
    source = "fhir-base"
    root = Elem(id=type_name, path=type_name, name=type_name, min=0, max=None, source=source,
                base_path=type_name)
    kind = ("primitive-type" if is_primitive(type_name) else
            "resource" if type_name in resource_types() or type_name in ("Resource", "DomainResource")
            else "complex-type")
    struct = Structure(f"http://hl7.org/fhir/StructureDefinition/{type_name}", "4.0.1", type_name, kind, root,
                       {type_name: root})
    root.owner = struct
    if model is None:
        if is_primitive(type_name):
            root.children = {
                "id": Elem(id=f"{type_name}.id", path=f"{type_name}.id", name="id", min=0, max=1,
                           types=(TypeRef("string"),), source=source, base_path="Element.id", owner=struct),
                "extension": Elem(id=f"{type_name}.extension", path=f"{type_name}.extension", name="extension",
                                  min=0, max=None, types=(TypeRef("Extension"),), source=source,
                                  base_path="Element.extension", owner=struct),
            }
            return struct
        return None
    return _fill(struct, root, type_name, model, {})


def _fill(struct: Structure, root: Elem, r4_path: str, model: Any, ancestors: dict[Any, str]) -> Structure:
    """Children of `root` from a fhir.resources model, kept to what R4 has at `r4_path`."""
    source = "fhir-base"
    type_name = root.path
    r4_paths = _r4_paths()
    check_r4 = any(p.startswith(r4_path + ".") for p in r4_paths)
    choices: dict[str, Elem] = {}
    fields = {f.alias or n: f for n, f in model.model_fields.items()}
    for name in model.elements_sequence():
        f = fields.get(name)
        if f is None:
            continue
        extra = f.json_schema_extra or {}
        codes, is_list = _field_types(f.annotation)
        if not codes:
            continue
        code = codes[0]
        if code.endswith("Resource") and code not in ("Resource",) and _model(code) is None:
            code = "Resource"
        backbone = _model(code) is not None and code not in DATATYPES_COMPLEX and code not in resource_types() \
            and code != "Resource"
        type_code = "BackboneElement" if backbone else code
        required = bool(extra.get("element_required")) or (f.is_required() and not extra.get("one_of_many"))
        enum = tuple(extra["enum_values"]) if extra.get("enum_values") else None
        targets = tuple(f"http://hl7.org/fhir/StructureDefinition/{t}" for t in extra.get("enum_reference_types", []))
        one_of = extra.get("one_of_many")
        path = f"{type_name}.{name}"
        if one_of:
            cname = f"{one_of}[x]"
            if check_r4 and f"{r4_path}.{cname}" not in r4_paths:
                continue  # R4B-only choice element
            el = choices.get(cname)
            if el is None:
                el = Elem(id=f"{type_name}.{cname}", path=f"{type_name}.{cname}", name=cname,
                          min=1 if extra.get("one_of_many_required") else 0, max=1, source=source,
                          base_path=f"{type_name}.{cname}", owner=struct)
                choices[cname] = el
                root.children[cname] = el
            el.types = (*el.types, TypeRef(type_code, (), targets))
            continue
        if check_r4 and f"{r4_path}.{name}" not in r4_paths:
            continue  # R4B-only element
        el = Elem(id=path, path=path, name=name, min=1 if required else 0, max=None if is_list else 1,
                  types=(TypeRef(type_code, (), targets),), source=source, base_path=path, enum=enum,
                  owner=struct)
        el.base_is_list = is_list
        if backbone:
            sub = _model(code)
            if sub in ancestors or sub is model:
                el.content_ref = "#" + (ancestors.get(sub) or root.path)  # e.g. Composition.section.section
            else:
                _fill(struct, el, f"{r4_path}.{name}", sub, {**ancestors, model: root.path})
        root.children[name] = el
        struct.by_id[path] = el
    # Choice elements take R4's type list (R4B added e.g. CodeableReference, RatioRange to Extension.value[x]).
    for cname, el in choices.items():
        r4types = r4_choice_types(f"{r4_path}.{cname[:-3]}")
        if r4types:
            known = {t.code: t for t in el.types}
            el.types = tuple(known.get(t, TypeRef(t)) for t in r4types)
    return struct


def element_enum(base_path: str) -> tuple[str, ...] | None:
    """The base code list of an element by its base path (`Composition.status`)."""
    type_name, _, rest = base_path.partition(".")
    if not rest:
        return None
    struct = base_structure(type_name)
    el: Elem | None = struct.root if struct else None
    for part in rest.split("."):
        if el is None:
            return None
        nxt = el.children.get(part)
        if nxt is None and el.types and not el.children:
            # descend into a complex type's base structure
            sub = base_structure(el.types[0].code)
            nxt = sub.root.children.get(part) if sub else None
        el = nxt
    return el.enum if el else None
