"""PATCH /fhir/DocumentReference/{id}: what a patch body asks, in each form a FHIR client sends it.

FHIR's patch interaction (http://hl7.org/fhir/R4/http.html#patch) takes a patch document whose media type says
its form. The server does one thing with a DocumentReference: it marks it entered-in-error, with a reason
(an administrator's withdrawal, audited). So it takes exactly the patches that do that, in three forms:

- FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html): a Parameters resource in FHIR JSON or FHIR XML, whose
  operations are `replace` of `DocumentReference.status` with the valueCode `entered-in-error`. The path is
  parsed by fhirpathpy's FHIRPath grammar: a path that is not FHIRPath is malformed; one that is, but names
  anything other than the status, is not what this server can do.
- JSON Patch (RFC 6902, application/json-patch+json): `replace` of `/status` with "entered-in-error", with any
  `test` operations before or after it; the patch is applied (by the jsonpatch library) to the DocumentReference
  as it is now, so a test that does not hold refuses the whole patch.
- kroniker's own JSON object {"status": "entered-in-error", "reason": "..."}.

The standard forms carry no reason: it comes in the query (`?reason=...`). Refusals follow RFC 5789 §2.2: a
patch that cannot be read is 400, a media type the route does not take 415, a patch that asks for what the
server cannot do 422, a test that does not hold against the resource 409. Nothing is changed by a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kroniker.reference_server import formats, inputs
from kroniker.reference_server.inputs import BadInput
from kroniker.reference_server.settings import Settings
from kroniker.validators.source import Limits

JSON_PATCH = "application/json-patch+json"
# What PATCH takes (CapabilityStatement.patchFormat): FHIRPath Patch in FHIR JSON and XML (and kroniker's own JSON
# object under the JSON types), and JSON Patch.
PATCH_FORMATS = (*formats.JSON_TYPES, *formats.XML_TYPES, JSON_PATCH)
STATUS = "entered-in-error"
# FHIRPath Patch's operation types (fhirpatch.html, "type"): any other is a malformed patch, these are well formed.
FHIRPATH_TYPES = ("add", "insert", "delete", "replace", "move")
# JSON Patch's operations (RFC 6902 §4).
JSON_PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")
# The one path that names a DocumentReference's status, as FHIRPath member names: with the type, or from the
# resource itself (a FHIRPath Patch path is evaluated on the resource).
STATUS_PATHS = (["DocumentReference", "status"], ["status"])
MAX_PATH = 200  # a FHIRPath longer than this names nothing this server changes: not parsed


@dataclass
class Change:
    """What a patch asks: the status (always entered-in-error), the reason when the body gives it (kroniker's
    own form), the form's name (for the audit record) and, for JSON Patch, the patch, whose tests are checked
    against the resource as it is."""

    form: str
    reason: str | None = None
    json_patch: Any = None  # jsonpatch.JsonPatch
    status: str = STATUS


def read(body: bytes, content_type: str | None, settings: Settings, limits: Limits, lang: str) -> Change:
    """The change a PATCH body asks for, by its media type; BadInput when it cannot be read (400), is of a
    media type PATCH does not take (415), or asks for what the server cannot do (422)."""
    media = inputs.media_type(content_type)
    if media == JSON_PATCH:
        return _json_patch(inputs.json_value(body, settings))
    if formats.is_xml(content_type):
        data = formats.read_xml(body, limits, lang)
        if data.get("resourceType") != "Parameters":
            raise BadInput(400, "patch-parameters", where=str(data.get("resourceType") or "(root)")[:40])
        return _fhirpath_patch(data)
    if media and media not in formats.JSON_TYPES:
        raise BadInput(415, "patch-media-type", "not-supported", found=media[:60])
    value = inputs.json_value(body, settings)
    if isinstance(value, list):  # a JSON Patch under a JSON media type: say which one it needs
        raise BadInput(415, "patch-json-patch-type", "not-supported", found=(media or "(none)")[:60])
    if not isinstance(value, dict):
        raise BadInput(400, "not-json")
    data = value
    if "resourceType" in data:
        if data["resourceType"] != "Parameters":
            raise BadInput(400, "patch-parameters", where=str(data["resourceType"])[:40])
        return _fhirpath_patch(data)
    status, reason = data.get("status"), data.get("reason")
    if status != STATUS or not isinstance(reason, str) or not reason.strip():
        raise BadInput(400, "patch-body")
    return Change("kroniker", reason=reason)


# -- FHIRPath Patch ---------------------------------------------------------------------------------------------

def _fhirpath_patch(data: dict[str, Any]) -> Change:
    parameters = data.get("parameter")
    if not isinstance(parameters, list) or not parameters:
        raise BadInput(400, "patch-parameters", where="Parameters.parameter")
    for i, p in enumerate(parameters):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(p, dict) or p.get("name") != "operation" or set(p) - {"name", "part", "id"}:
            raise BadInput(400, "patch-parameters", where=where)
        parts = _parts(p.get("part"), where)
        kind = parts.get("type")
        if kind is None or set(kind) != {"valueCode"} or kind["valueCode"] not in FHIRPATH_TYPES:
            raise BadInput(400, "patch-parameters", where=f"{where}.type")
        if kind["valueCode"] != "replace":
            raise BadInput(422, "patch-unsupported", "not-supported", where=f"{where}.type",
                           found=kind["valueCode"])
        if set(parts) != {"type", "path", "value"}:
            raise BadInput(400, "patch-parameters", where=f"{where}.part")
        path = parts["path"]
        if set(path) != {"valueString"} or not isinstance(path["valueString"], str):
            raise BadInput(400, "patch-parameters", where=f"{where}.path")
        if fhirpath_members(path["valueString"]) not in STATUS_PATHS:
            raise BadInput(422, "patch-unsupported", "not-supported", where=f"{where}.path",
                           found=path["valueString"][:80])
        value = parts["value"]
        if len(value) != 1:
            raise BadInput(400, "patch-parameters", where=f"{where}.value")
        (key, code), = value.items()
        if key != "valueCode" or code != STATUS:
            found = f"{key} {code}"[:80] if isinstance(code, str | int | float | bool) else key
            raise BadInput(422, "patch-unsupported", "not-supported", where=f"{where}.value", found=found)
    return Change("fhirpath-patch")


def _parts(parts: Any, where: str) -> dict[str, dict[str, Any]]:
    """An operation's parts by name (each once, each with one value[x]): {name: {"valueX": value}}."""
    if not isinstance(parts, list) or not parts:
        raise BadInput(400, "patch-parameters", where=f"{where}.part")
    out: dict[str, dict[str, Any]] = {}
    for j, part in enumerate(parts):
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name in out or set(part) - {"name", "id"} - {
                k for k in part if k.startswith("value")}:
            raise BadInput(400, "patch-parameters", where=f"{where}.part[{j}]")
        out[name] = {k: v for k, v in part.items() if k.startswith("value")}
    return out


def fhirpath_members(path: str) -> list[str] | None:
    """The member names of a FHIRPath that is a plain path (`DocumentReference.status`, `status`, with the
    grammar's whitespace and `quoted` identifiers); None for any other expression (a function, an indexer, an
    operator, ...). BadInput 400 when the text is not FHIRPath at all. Parsed by fhirpathpy's own grammar, with
    its error recovery off: an expression with anything left over is not read as a shorter one."""
    if len(path) > MAX_PATH:
        return None
    from antlr4 import CommonTokenStream, InputStream, Token
    from antlr4.error.ErrorListener import ErrorListener
    from antlr4.tree.Tree import ParseTreeWalker
    from fhirpathpy.parser.ASTPathListener import ASTPathListener
    from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
    from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

    class Refuse(ErrorListener):
        def syntaxError(self, *args: Any) -> None:  # ANTLR's name
            raise ValueError("not FHIRPath")

    try:
        lexer = FHIRPathLexer(InputStream(path))
        lexer.removeErrorListeners()
        lexer.addErrorListener(Refuse())
        tokens = CommonTokenStream(lexer)
        parser = FHIRPathParser(tokens)
        parser.removeErrorListeners()
        parser.addErrorListener(Refuse())
        tree = parser.expression()
        if tokens.LA(1) != Token.EOF:
            raise ValueError("text after the expression")
        listener = ASTPathListener()
        ParseTreeWalker().walk(listener, tree)
    except Exception:  # the lexer's and parser's errors (antlr4's RecognitionException and ours)
        raise BadInput(400, "patch-fhirpath", found=path[:80]) from None
    return _members(listener.parentStack[0])


_PLAIN = {"InvocationExpression", "TermExpression", "InvocationTerm", "MemberInvocation"}


def _members(node: dict[str, Any]) -> list[str] | None:
    children = node.get("children") or []
    kind = node.get("type")
    if kind is None:  # the root
        return _members(children[0]) if len(children) == 1 else None
    if kind == "Identifier":
        text = node.get("text", "")
        return [text[1:-1] if re.fullmatch(r"`.*`", text) else text]
    if kind not in _PLAIN or not children:
        return None
    out: list[str] = []
    for child in children:
        names = _members(child)
        if names is None:
            return None
        out += names
    return out


# -- JSON Patch ----------------------------------------------------------------------------------------------

def _json_patch(ops: Any) -> Change:
    import jsonpatch
    import jsonpointer

    try:
        patch = jsonpatch.JsonPatch(ops)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError):
        raise BadInput(400, "patch-json-patch") from None
    sets = False
    for i, op in enumerate(ops):
        if op["op"] == "test":
            if "value" not in op:
                raise BadInput(400, "patch-json-patch")
            continue
        if op["op"] != "replace":
            raise BadInput(422, "patch-unsupported", "not-supported", where=f"[{i}].op", found=str(op["op"])[:20])
        if op["path"] != "/status":
            raise BadInput(422, "patch-unsupported", "not-supported", where=f"[{i}].path", found=op["path"][:80])
        if "value" not in op:
            raise BadInput(400, "patch-json-patch")
        if op["value"] != STATUS:
            raise BadInput(422, "patch-unsupported", "not-supported", where=f"[{i}].value",
                           found=str(op["value"])[:80])
        sets = True
    if not sets:
        raise BadInput(422, "patch-unsupported", "not-supported", where="(patch)", found="test")
    return Change("json-patch", json_patch=patch)


def failed_test(change: Change, current: dict[str, Any]) -> str | None:
    """None when a JSON Patch's tests hold against the resource as it is now (RFC 6902 §4.6: the operations in
    their order, a test after the replace seeing the status replaced); else the path of the first that does not.
    Applied by jsonpatch to a copy: the stored resource is changed by the store alone."""
    if change.json_patch is None:
        return None
    import copy

    import jsonpatch
    import jsonpointer

    doc = copy.deepcopy(current)
    for op in change.json_patch.patch:
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            return str(op["path"])[:80]
    return None
