"""An XML Schema for the FHIR R4 structures a document uses, generated from kroniker's base structures.

The official FHIR XSDs (fhir-all.xsd) are not available offline, so the schema is written from what the
engine already knows: `base.base_structure()`, whose children come in fhir.resources' `elements_sequence`
(FHIR's element order) and are kept to R4. It checks only what XML adds to the JSON shape — namespace,
element order, elements and attributes that have no place — and leaves cardinality, datatypes and
everything else to the engine, which sees the same document in the JSON shape: every element is
`minOccurs="0"` and every value attribute is a plain `xs:string`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from xml.sax.saxutils import quoteattr

import xmlschema

from kroniker.validators import base
from kroniker.validators.structure import Elem

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
CONTAINER = "ResourceContainer"

# The XML attribute each element of these types has instead of a child element (besides Element.id).
ATTRIBUTES = {"Extension": ("url",)}
# Content of a type whose structure is not available offline: anything; the engine says it was not checked.
_ANY_CONTENT = ('<xs:sequence><xs:any namespace="##any" processContents="skip" minOccurs="0" '
                'maxOccurs="unbounded"/></xs:sequence><xs:anyAttribute processContents="skip"/>')


def choice_name(stem: str, code: str) -> str:
    """`value[x]` of type `string` is written `valueString`."""
    return stem + code[0].upper() + code[1:]


@lru_cache(maxsize=32)
def schema_for(resource_types: frozenset[str]) -> xmlschema.XMLSchema10:
    """The compiled schema for documents made of these resource types (cached: compiling takes a while)."""
    return xmlschema.XMLSchema10(schema_text(resource_types), allow="none", use_meta=True)


def schema_text(resource_types: Iterable[str]) -> str:
    """The XSD text: one global element and one complexType per resource type, plus what they reach."""
    return _Writer(sorted(resource_types)).write()


class _Writer:
    """Writes complexTypes breadth-first from the resource types, each type once."""

    def __init__(self, resource_types: list[str]) -> None:
        self.resources = [r for r in resource_types if base.base_structure(r) is not None]
        self.opaque = [r for r in resource_types if base.base_structure(r) is None]
        self.pending: list[tuple[str, str, Elem | None]] = []  # (xsd type name, FHIR type code, backbone)
        self.named: set[str] = set()
        self.out: list[str] = []

    def write(self) -> str:
        for r in self.resources:
            self.want(r, r)
        while self.pending:
            name, code, backbone = self.pending.pop(0)
            self.out.append(self.complex_type(name, code, backbone))
        head = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:f="{FHIR_NS}" '
                f'targetNamespace="{FHIR_NS}" elementFormDefault="qualified">')
        roots = [f'<xs:element name="{r}" type="f:{r}"/>' for r in self.resources]
        roots += [f'<xs:element name="{r}" type="f:{_opaque(r)}"/>' for r in self.opaque]
        return "\n".join([head, *roots, self.container(), *self.opaque_types(), *self.out, "</xs:schema>"])

    def want(self, name: str, code: str, backbone: Elem | None = None) -> str:
        if name not in self.named:
            self.named.add(name)
            self.pending.append((name, code, backbone))
        return f"f:{name}"

    def container(self) -> str:
        # Bundle.entry.resource, contained, Parameters.parameter.resource: one resource, named by its type.
        alts = "".join(f'<xs:element ref="f:{r}"/>' for r in self.resources + self.opaque)
        body = f"<xs:choice>{alts}</xs:choice>" if alts else ""
        return f'<xs:complexType name="{CONTAINER}">{body}</xs:complexType>'

    def opaque_types(self) -> list[str]:
        # R4 resources whose structure is not available offline (docs/r4b-vs-r4.md).
        return [f'<xs:complexType name="{_opaque(r)}">{_ANY_CONTENT}</xs:complexType>' for r in self.opaque]

    def complex_type(self, name: str, code: str, backbone: Elem | None) -> str:
        if base.is_primitive(code):
            return (f'<xs:complexType name="{name}"><xs:sequence>'
                    f'<xs:element name="extension" type="f:Extension" minOccurs="0" maxOccurs="unbounded"/>'
                    f'</xs:sequence><xs:attribute name="id" type="xs:string"/>'
                    f'<xs:attribute name="value" type="xs:string"/></xs:complexType>')
        if backbone is not None:
            children, is_resource = backbone.children, False
        else:
            struct = base.base_structure(code)
            if struct is None:
                return f'<xs:complexType name="{name}">{_ANY_CONTENT}</xs:complexType>'
            children, is_resource = struct.root.children, struct.kind == "resource"
        particles: list[str] = []
        attributes: list[str] = []
        for child in children.values():
            if not is_resource and child.name == "id":
                attributes.append('<xs:attribute name="id" type="xs:string"/>')  # Element.id is an attribute
            elif child.name in ATTRIBUTES.get(code, ()):
                attributes.append(f'<xs:attribute name="{child.name}" type="xs:string"/>')
            else:
                particles.append(self.particle(child))
        return (f'<xs:complexType name="{name}"><xs:sequence>{"".join(particles)}</xs:sequence>'
                f'{"".join(attributes)}</xs:complexType>')

    def particle(self, child: Elem) -> str:
        occurs = ' minOccurs="0"' + (' maxOccurs="unbounded"' if child.is_list else "")
        if child.choice:
            stem = child.name[:-3]
            alts = "".join(f'<xs:element name="{choice_name(stem, c)}" type="{self.type_ref(c, child)}"/>'
                           for c in dict.fromkeys(child.type_codes))
            return f"<xs:choice{occurs}>{alts}</xs:choice>"
        code = child.types[0].code if child.types else "BackboneElement"
        if code == "xhtml":
            # The narrative's div: XHTML, checked by the engine (txt-1, txt-2), not by this schema.
            return f'<xs:any namespace="{XHTML_NS}" processContents="skip"{occurs}/>'
        return f"<xs:element name={quoteattr(child.name)} type=\"{self.type_ref(code, child)}\"{occurs}/>"

    def type_ref(self, code: str, child: Elem) -> str:
        if code == "Resource" or code in base.resource_types():
            return f"f:{CONTAINER}"
        if code == "BackboneElement" or child.content_ref:
            target = _backbone_target(child)
            return self.want(target.path, "BackboneElement", target)
        return self.want(code, code)


def _opaque(resource_type: str) -> str:
    return f"{resource_type}.opaque"


def _backbone_target(child: Elem) -> Elem:
    """The element whose children a backbone element has: itself, or the one its contentReference names."""
    if child.content_ref and not child.children and child.owner is not None:
        target = child.owner.by_id.get(child.content_ref.split("#", 1)[-1])
        if target is not None:
            return target
    return child
