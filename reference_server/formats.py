"""FHIR's formats on the FHIR routes: JSON and XML out by `_format` or `Accept`, XML bodies in.

The one negotiation point (http://hl7.org/fhir/R4/http.html#mime-type): `_format` (json, xml or a FHIR media
type) overrides `Accept`; `Accept` is read with its q-values (`*/*` and `application/*` leave the choice to the
server); with neither, JSON. An `Accept` that allows no format FHIR answers in is refused with 406 (the
OperationOutcome in JSON). The answer is the same resource, status and headers in either format: the handlers
build FHIR JSON (app.fhir, app.outcome) and `render` writes it as XML when XML was asked for
(validators/fhir_xml.py). The routes outside the FHIR base that answer plain JSON (/health, /blocks, /admin/*) are
negotiated the same way and answer XML in W3C's JSON-in-XML form (json_xml.py), their refusals in FHIR's XML; an
Accept they cannot meet is disregarded there (JSON), an unknown `_format` refused. The pages answer HTML.

XML bodies are read by the validator's XML reader (validators/xmlreader.py: entities, DTDs and network off, size
and depth bounded) into the JSON shape the handlers take; what it cannot read, or reads with XML structure errors
(elements out of FHIR's order, with no place, in the wrong namespace), is a 400 OperationOutcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kroniker.reference_server import inputs
from kroniker.reference_server.inputs import BadInput
from kroniker.validators.fhir_xml import FHIR_NS, to_xml
from kroniker.validators.findings import Severity
from kroniker.validators.source import Limits, Unreadable

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
XML_CONTENT_TYPE = "application/fhir+xml; charset=utf-8"
JSON_TYPES = (FHIR_JSON, "application/json")
XML_TYPES = (FHIR_XML, "application/xml", "text/xml")
# _format's values (FHIR: the short names and the media types); `+` arrives as a space when not %-encoded.
_FORMAT = {"json": "json", "xml": "xml", **dict.fromkeys(JSON_TYPES, "json"), **dict.fromkeys(XML_TYPES, "xml")}
_ANY = ("*/*", "application/*")


@dataclass(frozen=True)
class Wanted:
    """What the client asked for: "json", "xml", or None (no preference: JSON, or a document as it is stored);
    `refused` holds what was asked when nothing FHIR answers in is acceptable."""

    format: str | None = None
    refused: str | None = None

    @property
    def xml(self) -> bool:
        return self.format == "xml"


def is_fhir_path(path: str) -> bool:
    """The FHIR base is /fhir (and /metadata, the CapabilityStatement's old path)."""
    return path == "/fhir" or path.startswith("/fhir/") or path == "/metadata"


def negotiate(request: Request, format_param: str | None) -> Wanted:
    if format_param is not None:
        value = inputs.media_type(format_param.replace(" ", "+"))
        chosen = _FORMAT.get(value)
        return Wanted(chosen) if chosen else Wanted(refused=format_param[:60])
    return from_accept(request.headers.get("accept", ""))


def from_accept(accept: str) -> Wanted:
    """The format the Accept header prefers (highest q; the first listed among equals); None for any."""
    if not accept.strip():
        return Wanted()
    best: tuple[float, bool, int] | None = None
    chosen_best: str | None = None
    for position, part in enumerate(accept.split(",")):
        media = inputs.media_type(part)
        if not media:
            continue
        q = _q(part)
        if q <= 0:
            continue
        chosen = _FORMAT.get(media) if media not in ("json", "xml") else None
        if chosen is None and media not in _ANY:
            continue
        # the highest q; among equals a format named before a wildcard, then the first listed
        rank = (q, chosen is not None, -position)
        if best is None or rank > best:
            best, chosen_best = rank, chosen
    if best is None:
        return Wanted(refused=accept[:60])
    return Wanted(chosen_best)


def _q(part: str) -> float:
    for param in part.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def render(response: Response, wanted: Wanted) -> Response:
    """A FHIR JSON answer (app.FhirJSON) in the asked format: the same status, headers and content."""
    if not wanted.xml:
        return response
    content = getattr(response, "fhir_content", None)
    if content is None:
        if not hasattr(response, "plain_content"):
            return response  # a document as stored (formats.document chose already), a page
        # Plain JSON of a route outside FHIR (/health, /blocks, /admin/*, app.PlainJSON): W3C's JSON in XML.
        from kroniker.reference_server import json_xml

        return xml_response(json_xml.dumps(response.plain_content), response, json_xml.CONTENT_TYPE)
    return xml_response(to_xml(content).encode("utf-8"), response)


def xml_response(body: bytes, like: Response, content_type: str = XML_CONTENT_TYPE) -> Response:
    """Body as FHIR XML (or another XML), with the status and headers (ETag, Location, ...) of `like`."""
    out = Response(body, status_code=like.status_code, media_type=FHIR_XML)
    drop = {b"content-type", b"content-length"}
    out.raw_headers = [h for h in like.raw_headers if h[0] not in drop] + [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1"))]
    return out


def is_xml(content_type: str | None) -> bool:
    return inputs.media_type(content_type) in XML_TYPES


def read_xml(body: bytes, limits: Limits, lang: str = "en") -> dict[str, Any]:
    """A FHIR XML body in the JSON shape; BadInput (400) when it cannot be read or breaks FHIR's XML rules."""
    from kroniker.validators.xmlreader import parse_xml  # lxml and the XSD only when XML arrives

    if len(body) > limits.max_bytes:
        raise BadInput(400, "xml-body", "too-long", detail=f"more than {limits.max_bytes} bytes")
    try:
        parsed = parse_xml("<request>", body, limits)
    except Unreadable as exc:
        raise BadInput(400, "xml-body", "structure", detail=exc.finding.message(lang)) from None
    errors = [f for f in parsed.findings if f.severity >= Severity.ERROR]
    if errors:
        raise BadInput(400, "xml-body", "structure", detail=f"{errors[0].location}: {errors[0].message(lang)}")
    return parsed.data


def body_json(body: bytes, content_type: str | None, limits: Limits, lang: str = "en") -> bytes:
    """A FHIR body as JSON bytes: an XML one converted, anything else as it is."""
    if not is_xml(content_type):
        return body
    return json.dumps(read_xml(body, limits, lang), ensure_ascii=False).encode("utf-8", "backslashreplace")


def root_bundle_type(body: bytes) -> str | None:
    """Bundle.type of an XML Bundle, read from its first elements only (None: not an XML Bundle, or unreadable).
    Tells a transaction from a document without reading the document twice."""
    from io import BytesIO

    from lxml import etree

    if b"<!DOCTYPE" in body[:4096].upper():
        return None  # the full read refuses it
    try:
        depth = 0
        for event, el in etree.iterparse(BytesIO(body), events=("start", "end"), resolve_entities=False,
                                         no_network=True, load_dtd=False, huge_tree=False):
            depth += 1 if event == "start" else -1
            if event != "start":
                continue
            if depth == 1 and el.tag != f"{{{FHIR_NS}}}Bundle":
                return None
            if depth == 2 and el.tag == f"{{{FHIR_NS}}}type":
                return el.get("value")
            if depth == 2 and el.tag in (f"{{{FHIR_NS}}}entry", f"{{{FHIR_NS}}}link"):
                return None  # type comes before these
    except (etree.XMLSyntaxError, ValueError):
        return None
    return None


def document(content: bytes, content_type: str, wanted: Wanted, limits: Limits,
             headers: dict[str, str], status: int = 200) -> Response:
    """A stored document (GET /fhir/Bundle/{id}): as submitted — the canonical form, whose size and hash the
    DocumentReference gives — unless the client asked for the other format; then converted."""
    stored_xml = inputs.media_type(content_type) in XML_TYPES
    if wanted.format is None or wanted.xml == stored_xml:
        media = XML_CONTENT_TYPE if stored_xml else FHIR_JSON
        return Response(content, status, media_type=media, headers=headers)
    if wanted.xml:
        data = json.loads(content)
        return Response(to_xml(data).encode("utf-8"), status, media_type=XML_CONTENT_TYPE, headers=headers)
    from kroniker.validators.xmlreader import parse_xml

    data = parse_xml("<stored>", content, limits).data
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
    return Response(body, status, media_type=FHIR_JSON, headers=headers)
