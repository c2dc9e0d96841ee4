"""The register document: plain JSON dicts validated by `schema/register.schema.json`, their canonical form and hash.

A register is data, not a class tree: it is read from JSON, kept as JSON in the store, diffed as JSON and written
back as JSON, so a dict validated by the JSON Schema is the model. This module holds what every other module needs
to read one: the schema and its validation, the canonical bytes and the sha256 that sign-offs and exports carry,
the vocabularies (roles, threats, scales) and small accessors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from kroniker.validators.findings import Finding, Severity
from kroniker.validators.findings import finding as make_finding

Register = dict[str, Any]

SCHEMA_ID = "urn:kroniker:dpia:register:1"
EXPORT_FORMAT = "kroniker-dpia-export/1"
TEMPLATES = ("lbp",)

ROLES = ("controller", "joint-controller", "processor", "sub-processor", "independent-controller", "recipient")
CONTROLLER_ROLES = ("controller", "joint-controller")
PROCESSOR_ROLES = ("processor", "sub-processor")
THREATS = ("illegitimate-access", "unwanted-change", "loss")
SCALE = {1: "negligible", 2: "limited", 3: "significant", 4: "maximum"}  # CNIL's 4-point scales
CLAUSES = tuple("abcdefgh")  # Art. 28(3)(a)-(h)
TERMS = ("subject_matter", "duration", "nature", "purpose", "data_types", "data_subjects", "controller_rights")
NECESSITY = ("purposes", "lawfulness", "minimisation", "accuracy", "storage", "information", "access_portability",
             "rectification_erasure", "objection_restriction", "processors", "transfers")
DESCRIPTION = ("nature", "scope", "context", "purposes")


# -- schema ------------------------------------------------------------------------------------------------

@cache
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schema/register.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


@cache
def _validator(definition: str) -> Draft202012Validator:
    """A validator for the register (definition '') or one of its $defs (e.g. 'export', 'organisation')."""
    root = schema()
    registry: Registry = Registry().with_resource(SCHEMA_ID, Resource.from_contents(root))
    target = {"$ref": f"{SCHEMA_ID}#/$defs/{definition}"} if definition else root
    return Draft202012Validator(target, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One way a document breaks the schema: where (JSON pointer) and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


def schema_problems(document: Any, definition: str = "") -> list[SchemaProblem]:
    """Every schema violation, the deepest first within each place, in document order."""
    errors = sorted(_validator(definition).iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [SchemaProblem(pointer(tuple(e.absolute_path)), _short(e.message)) for e in errors]


# The register's keyed lists and the $defs their items follow: a clinic's delta is validated item by item.
ITEM_DEFINITIONS = {"organisations": "organisation", "activities": "activity", "agreements": "agreement",
                    "sub_processor_approvals": "approval"}
HEAD = ("schema_version", "id", "kind", "title")


def schema_problems_where(document: Mapping[str, Any], patch: Mapping[str, Any]) -> list[SchemaProblem]:
    """The schema problems in the parts of a document a merge patch touched; the rest came from a template that was
    validated when it was stored. Validating the whole register costs about 10 ms, too much 1,700 times over."""
    problems: list[SchemaProblem] = []
    rest = {key: document[key] for key in HEAD if key in document}
    for key, value in patch.items():
        items = document.get(key)
        if key in ITEM_DEFINITIONS and isinstance(value, dict) and isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict) and item.get("id") in value:
                    problems += [SchemaProblem(pointer((key, i)) + p.pointer, p.message)
                                 for p in _item_problems(ITEM_DEFINITIONS[key], canonical(item))]
        elif key in document:
            rest[key] = document[key]
    return schema_problems(rest) + problems


@lru_cache(maxsize=8192)
def _item_problems(definition: str, item: bytes) -> tuple[SchemaProblem, ...]:
    # Keyed by content: 1,700 clinics that signed the same agreement on the same day are validated once.
    return tuple(schema_problems(json.loads(item), definition))


def _short(message: str) -> str:
    # jsonschema quotes whole sub-documents in some messages; a reader needs the start of it.
    return message if len(message) <= 300 else message[:297] + "..."


class RegisterError(ValueError):
    """A document that cannot be taken in: unreadable, not the shape the schema gives, or ids given twice. Carries
    every finding (the validators' shape: code, JSON pointer, message in Danish and English). Nothing was written."""

    def __init__(self, source: str, findings: Sequence[Finding]) -> None:
        self.source = source
        self.findings = list(findings)
        shown = "; ".join(f.message("en") for f in self.findings[:5])
        super().__init__(f"{source}: {shown}" + (" …" if len(self.findings) > 5 else ""))


def schema_finding(problem: SchemaProblem, prefix: str = "") -> Finding:
    where = prefix + problem.pointer
    return make_finding(Severity.ERROR, "DPIA-SCHEMA", where or "/", parse_pointer(where),
                        params={"detail": problem.message})


def require_valid(document: Any, source: str, definition: str = "") -> None:
    """The document has the schema's shape (a register, or with definition 'export' an export) and no id twice in
    any list of its register; else a RegisterError with every finding."""
    findings = [schema_finding(p) for p in schema_problems(document, definition)]
    if not findings:
        register, prefix = (document["register"], ("register",)) if definition == "export" else (document, ())
        findings = duplicate_id_findings(register, prefix)
    if findings:
        raise RegisterError(source, findings)


def require_valid_where(document: Mapping[str, Any], patch: Mapping[str, Any], source: str) -> None:
    """As require_valid for the parts of a document a clinic's delta touched (the rest is the template's, checked
    when it was stored)."""
    findings = [schema_finding(p) for p in schema_problems_where(document, patch)]
    for key in patch:
        if key in document:
            findings += duplicate_id_findings(document[key], (key,))
    if findings:
        raise RegisterError(source, findings)


_CONTAINERS = (dict, list)


def duplicate_ids(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """(path of the id, id) for every item whose id an earlier item of the same list already has, in any list of
    objects with ids anywhere in the document (organisations, activities, risks, measures, data categories, …).
    Without recursion, so any depth the reader let through is fine."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(node, prefix)] if node.__class__ in _CONTAINERS else []
    while stack:
        item, path = stack.pop()
        # Only containers go on the stack: a register is mostly text, and this runs for every clinic `check` reads.
        if item.__class__ is dict:
            stack += [(v, (*path, k)) for k, v in reversed(item.items()) if v.__class__ in _CONTAINERS]
        else:
            seen: set[str] = set()
            for i, element in enumerate(item):
                if element.__class__ is dict and element.get("id").__class__ is str:
                    if element["id"] in seen:
                        found.append(((*path, i, "id"), element["id"]))
                    seen.add(element["id"])
            stack += [(v, (*path, i)) for i, v in reversed(list(enumerate(item))) if v.__class__ in _CONTAINERS]
    return found  # depth first, children in order: document order


def duplicate_id_findings(node: Any, prefix: tuple[str | int, ...] = ()) -> list[Finding]:
    return [make_finding(Severity.ERROR, "DPIA-ID-DUPLICATE", pointer(path), path, params={"id": item_id})
            for path, item_id in duplicate_ids(node, prefix)]


def is_export(document: Any) -> bool:
    return isinstance(document, dict) and "format" in document and "register" in document


# -- canonical form and hash ------------------------------------------------------------------------------

def canonical(document: Any) -> bytes:
    """The bytes a hash is taken over: keys sorted, no whitespace, UTF-8 (RFC 8785 for documents without floats,
    which the schema does not allow)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def register_hash(document: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(document)).hexdigest()


def pretty(document: Any) -> str:
    """The file form: sorted keys and two-space indent, so that the same content always gives the same bytes and a
    change reads as a small diff in git."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- templates ---------------------------------------------------------------------------------------------

def template(name: str = "lbp") -> Register:
    """A shipped template (a fresh copy)."""
    if name not in TEMPLATES:
        raise KeyError(f"no shipped template {name!r}; there is: {', '.join(TEMPLATES)}")
    text = resources.files(__package__).joinpath(f"templates/{name}-template.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


# -- reading a register ------------------------------------------------------------------------------------

def pointer(path: tuple[str | int, ...]) -> str:
    """A JSON Pointer (RFC 6901) for a path."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def parse_pointer(text: str) -> tuple[str, ...]:
    if text and not text.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/': {text!r}")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]) if text else ()


def active(item: Mapping[str, Any]) -> bool:
    """Retired items stay in the register (nothing is deleted) but no longer count."""
    return item.get("status") not in ("retired", "terminated")


def listed(document: Mapping[str, Any], *path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) for each active item of the list at path, e.g. listed(doc, 'dpia', 'risks')."""
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, dict) and active(item):
                yield i, item


def by_id(document: Mapping[str, Any], *path: str) -> dict[str, dict[str, Any]]:
    """The active items of a list keyed by their id."""
    return {item["id"]: item for _, item in listed(document, *path) if "id" in item}


def risk_level(estimate: Mapping[str, Any] | None) -> str | None:
    """'high', 'medium' or 'low' for a severity × likelihood estimate; None when it is incomplete.

    High when both are significant or maximum (3–4), as in the upper-right quarter of CNIL's risk map; medium when
    one of them is; low otherwise.
    """
    if not estimate or "severity" not in estimate or "likelihood" not in estimate:
        return None
    severity, likelihood = estimate["severity"], estimate["likelihood"]
    if severity >= 3 and likelihood >= 3:
        return "high"
    return "medium" if severity >= 3 or likelihood >= 3 else "low"
