"""The reference server: a Starlette app built by a factory from a Settings object.

Routes are declared in one table (ROUTES, at the end of this module), each with the access rule it follows: a
function of policy.py, handed to the route's handler, which must ask it (a route that answers without asking
its rule is a server error, caught here and in tests). Every request is recorded in the audit log, allowed or
not. What a request carries is bounded before it is parsed (inputs.py); no route reads more than its limit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kroniker import __version__
from kroniker.reference_server import audit, formats, inputs, json_xml, patching, policy
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.db import make_engine, migrate
from kroniker.reference_server.formats import Wanted
from kroniker.reference_server.inputs import BadInput
from kroniker.reference_server.metadata import DocumentMeta, MetadataError, derive, instant
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.store import Conflict, SearchQuery, StaleReplacement, Store, utcnow
from kroniker.reference_server.tokens import ROLES, Principal, TokenError, Verifier, load_or_create_key
from kroniker.validators import messages
from kroniker.validators.findings import Report, Severity
from kroniker.validators.identifiers import CPR_SYSTEM
from kroniker.validators.packages import PackageCache
from kroniker.validators.render import operation_outcome
from kroniker.validators.source import Unreadable, parse
from kroniker.validators.validate import Validator

log = logging.getLogger("kroniker.reference_server")

FHIR_JSON = "application/fhir+json"
DOCUMENT_TYPES = ("application/fhir+json", "application/json", "application/fhir+xml", "application/xml")
# Search parameters that name one thing: given twice, which one was meant cannot be told.
SINGLE = ("patient", "patient.identifier", "status", "_count", "_offset", "_sort", "replaces", "_consent-override")


class ApiError(Exception):
    """An answer that is an OperationOutcome with an HTTP status."""

    def __init__(self, status: int, key: str, *, code: str = "processing", severity: str = "error",
                 finding: str | None = None, **params: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.code, self.severity, self.params = status, key, code, severity, params
        self.finding = finding or key

    @classmethod
    def of(cls, exc: BadInput) -> ApiError:
        return cls(exc.status, exc.key, code=exc.code, **exc.params)


@dataclass
class Context:
    settings: Settings
    store: Store
    validator: Validator
    key: bytes
    submitting: anyio.CapacityLimiter
    verify: Verifier


class Rule:
    """A route's access rule (a function of policy.py), and whether the route's handler asked it."""

    def __init__(self, fn: Callable[..., policy.Decision]) -> None:
        self.fn, self.asked = fn, False
        self.decision: policy.Decision | None = None  # the last answer (the access log names a proxy's kind)

    def __call__(self, *args: Any) -> policy.Decision:
        self.asked = True
        self.decision = self.fn(*args)
        return self.decision


@dataclass
class Call:
    """One request as a route handler sees it: the caller, the bounded parameters and body, and its rule."""

    request: Request
    ctx: Context
    rule: Rule
    principal: Principal | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    wanted: Wanted = field(default_factory=Wanted)  # the format asked for (formats.negotiate), on FHIR routes

    @property
    def who(self) -> Principal:
        assert self.principal is not None, "a route with a token"
        return self.principal

    @property
    def lang(self) -> str:
        return lang_of(self.request)

    def one(self, name: str) -> str | None:
        """The value of a parameter that may be given once (None when absent)."""
        values = [v for k, v in self.params if k == name]
        if len(values) > 1:
            raise ApiError(400, "param-once", code="invalid", name=name)
        return values[0] if values else None


Endpoint = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    """A route: method, path, handler, the access rule (policy function) it follows, and what body it takes:
    "none", "json" (Settings.max_small_body_bytes), "form" (the same) or "document" (max_request_bytes)."""

    method: str
    path: str
    endpoint: Endpoint
    rule: Callable[..., policy.Decision]
    body: str = "none"
    public: bool = False
    # What the route is in FHIR terms, for the CapabilityStatement (generated from the served routes): the
    # resource type, the interaction (read, vread, search-type, create, patch, history-instance, ...) and the
    # search parameters as (name, type). A route without a resource type is not a FHIR route.
    resource: str | None = None
    interaction: str | None = None
    search: tuple[tuple[str, str], ...] = ()
    # A server-rendered page (pages.py): signed in by the session cookie, refusals answered as HTML pages.
    page: bool = False

    def body_limit(self, settings: Settings) -> int:
        return {"none": 0, "json": settings.max_small_body_bytes, "form": settings.max_small_body_bytes,
                "document": settings.max_request_bytes}[self.body]


def lang_of(request: Request) -> str:
    return "da" if request.headers.get("accept-language", "").lower().startswith("da") else "en"


class FhirJSON(JSONResponse):
    """FHIR JSON that always renders: a lone surrogate that reached an answer (echoed input) is written as
    its JSON escape instead of failing the UTF-8 encoding (and the answer with it)."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        self.fhir_content = content  # for formats.render: the same content as XML, when XML is asked for
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8", "backslashreplace")


class PlainJSON(JSONResponse):
    """kroniker's own JSON (the routes outside the FHIR base): kept as content too, so that formats.render writes
    it as W3C's JSON in XML without reading back the bytes it was just written to."""

    def render(self, content: Any) -> bytes:
        self.plain_content = content
        return super().render(content)


def outcome(status: int, key: str, lang: str, *, code: str = "processing", severity: str = "error",
            finding: str | None = None, headers: dict[str, str] | None = None, **params: Any) -> JSONResponse:
    body = {"resourceType": "OperationOutcome", "issue": [{
        "severity": severity, "code": code,
        "details": {"coding": [{"system": "urn:kroniker:finding", "code": finding or key}]},
        "diagnostics": messages.render(f"srv-{key}", params, lang),
    }]}
    return FhirJSON(body, status_code=status, headers=headers)


def fhir(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return FhirJSON(body, status_code=status, headers=headers)


def base_url(request: Request, settings: Settings) -> str:
    return settings.base_url.rstrip("/") or str(request.base_url).rstrip("/")


# -- the app ---------------------------------------------------------------------------------------------

def create_app(settings: Settings | None = None, *, run_migrations: bool = True,
               routes: Sequence[RouteSpec] | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database)
    if run_migrations:
        migrate(engine)
    key = load_or_create_key(settings.key_file)
    store = Store(engine, audit.load_or_create_key(settings.audit_key_file))
    if run_migrations:
        store.seal()  # a chain from before migration 0003 is re-keyed once (kroniker serve does it before workers)
    validator = Validator(PackageCache(settings.package_cache), settings.validator_limits, settings.plan_store)
    ctx = Context(settings, store, validator, key,
                  anyio.CapacityLimiter(settings.submit_threads),
                  Verifier(key, max_lifetime=settings.max_token_lifetime))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            ctx.store.close()

    specs = tuple(routes or ROUTES)
    app = Starlette(routes=[Route(r.path, _handler(r, ctx), methods=[r.method]) for r in specs],
                    exception_handlers={404: _not_found, 405: _not_allowed}, lifespan=lifespan)
    # Starlette answers /path/ and /path%2F with a redirect to a URL built from the Host header, unaudited:
    # here they are what they are, a path nothing answers (404, audited).
    app.router.redirect_slashes = False
    app.state.ctx = ctx
    app.state.specs = specs
    return app


def _handler(spec: RouteSpec, ctx: Context) -> Callable[[Request], Awaitable[Response]]:
    """The route's handler wrapped: the caller authenticated, parameters and body read within their bounds,
    the rule asked, and every refusal an OperationOutcome in the audit log."""
    fhir_route = formats.is_fhir_path(spec.path)
    # Every route but the pages answers JSON or XML: FHIR's XML on the FHIR routes, W3C's JSON in XML
    # (json_xml.py) for the plain JSON of the others (their refusals are OperationOutcomes, in FHIR's XML).
    negotiated = not spec.page

    async def endpoint(request: Request) -> Response:
        call = Call(request, ctx, Rule(spec.rule))
        if negotiated:  # until the query is read (and its _format), refusals answer as Accept asks
            call.wanted = _wanted(request, None)
        response = await answer(call)
        try:
            if call.wanted.xml:  # written in a worker thread, as a large JSON answer is built in one
                return await run_in_threadpool(formats.render, response, call.wanted)
            return response
        except Exception:  # never a stack trace to the caller; the log keeps it
            log.exception("could not write the answer to %s %s as XML", request.method, request.url.path)
            return outcome(500, "internal", call.lang, code="exception")

    def _wanted(request: Request, format_param: str | None) -> Wanted:
        wanted = formats.negotiate(request, format_param)
        if not fhir_route and format_param is None and wanted.refused is not None:
            # Outside FHIR an Accept nothing here can meet is disregarded (RFC 9110 §12.5.1), so that a
            # monitor's /health with `Accept: text/plain` still gets its JSON; an unknown _format is refused.
            return Wanted()
        return wanted

    async def answer(call: Call) -> Response:
        request = call.request
        try:
            if spec.public:
                call.rule(None)  # public: nothing to refuse, but asked all the same
            else:
                call.principal = authenticate(request, ctx, cookie=spec.page)
            call.params = inputs.parameters(request.scope.get("query_string", b""), ctx.settings)
            if negotiated:
                call.wanted = _wanted(request, call.one("_format"))
                if call.wanted.refused is not None:
                    raise ApiError(406, "not-acceptable", code="not-supported", found=call.wanted.refused)
            call.body = await inputs.read_body(request.stream(), request.headers.get("content-length"),
                                               spec.body_limit(ctx.settings))
            if spec.body == "json" and not fhir_route and formats.is_xml(request.headers.get("content-type")):
                # W3C's JSON in XML, read into the JSON the handler takes (its checks then apply as to JSON)
                value = json_xml.loads(call.body, max_depth=ctx.settings.max_json_depth)
                call.body = json.dumps(value).encode("ascii")
            response = await spec.endpoint(call)
        except (ApiError, BadInput) as raised:
            exc = raised if isinstance(raised, ApiError) else ApiError.of(raised)
            await run_in_threadpool(_audit_refusal, ctx, request, call.principal, exc)
            return _refusal(spec, call, exc.status, exc.key, code=exc.code, severity=exc.severity,
                            finding=exc.finding, **exc.params)
        except Exception:  # never a stack trace to the caller; the log keeps it
            log.exception("unexpected error in %s %s", request.method, request.url.path)
            await run_in_threadpool(_audit_refusal, ctx, request, call.principal, ApiError(500, "internal"))
            return _refusal(spec, call, 500, "internal", code="exception")
        if response.status_code < 400 and not call.rule.asked:
            # A handler that stopped asking its rule must not answer as if it had been allowed.
            log.error("%s %s answered without asking its access rule %s", spec.method, spec.path,
                      spec.rule.__name__)
            await run_in_threadpool(_audit_refusal, ctx, request, call.principal, ApiError(500, "internal"))
            return _refusal(spec, call, 500, "internal", code="exception")
        if call.rule.decision is not None and call.rule.decision.acting_for:
            request.scope.setdefault("state", {})["kroniker.acting_for"] = call.rule.decision.acting_for
        return response
    return endpoint


def _refusal(spec: RouteSpec, call: Call, status: int, key: str, **kwargs: Any) -> Response:
    """A refusal as the route answers: an OperationOutcome, or for a page a readable HTML page (with "Log ud" for
    a caller the session named, "Log ind" for one it did not)."""
    if spec.page:
        return pages.error_page(status, key, kwargs, call)
    return outcome(status, key, call.lang, **kwargs)


async def _not_found(request: Request, exc: Exception) -> Response:
    await run_in_threadpool(_audit_unrouted, request, 404, "no-route")
    return formats.render(outcome(404, "no-route", lang_of(request), code="not-found", path=request.url.path),
                          _unrouted_format(request))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    await run_in_threadpool(_audit_unrouted, request, 405, "method")
    return formats.render(outcome(405, "method", lang_of(request), code="not-supported", method=request.method),
                          _unrouted_format(request))


def _unrouted_format(request: Request) -> Wanted:
    """A path nothing answers is answered as FHIR, in the format asked (JSON if that cannot be told)."""
    try:
        asked = [v for k, v in inputs.parameters(request.scope.get("query_string", b""), request.app.state.ctx.settings)
                 if k == "_format"]
    except BadInput:
        asked = []
    wanted = formats.negotiate(request, asked[0] if len(asked) == 1 else None)
    return wanted if wanted.refused is None else Wanted()


def _audit_unrouted(request: Request, status: int, key: str) -> None:
    """Requests no route answers are in the audit log too (with the caller, when the token says who)."""
    ctx: Context = request.app.state.ctx
    try:
        principal: Principal | None = authenticate(request, ctx)
    except ApiError:
        principal = None
    _audit_refusal(ctx, request, principal, ApiError(status, key))


SESSION_COOKIE = "kroniker_session"  # the pages' sign-in: the same token as the API's, in an HttpOnly cookie


def authenticate(request: Request, ctx: Context, *, cookie: bool = False) -> Principal:
    header = request.headers.get("authorization", "")
    if cookie and not header:
        session = request.cookies.get(SESSION_COOKIE, "")
        if not session:
            raise ApiError(401, "no-session", code="login")
        header = f"Bearer {session}"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "no-token", code="login")
    return verify_token(token, ctx)


def verify_token(token: str, ctx: Context) -> Principal:
    try:
        return ctx.verify(token.strip())
    except TokenError as exc:
        raise ApiError(401, "bad-token", code="login", detail=str(exc)) from None


def _audit_refusal(ctx: Context, request: Request, principal: Principal | None, exc: ApiError) -> None:
    detail: dict[str, Any] = {"method": request.method, "path": request.url.path, "status": exc.status}
    patient = exc.params.get("patient")
    if patient is not None and not isinstance(patient, str):
        patient = str(patient)
    # Whatever was asked is recorded as the patient asked about; the audit store escapes and bounds it.
    rec = AuditRecord("refused", principal, outcome="4" if exc.status < 500 else "8",
                      patient_cpr=patient, reason=exc.key, detail=detail)
    try:
        ctx.store.record(rec)
    except Exception:  # the refusal itself must still be answered
        log.exception("could not record a refusal in the audit log")


def _is_cpr(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(policy.IDENTIFIER_FORMATS["patient"], value) is not None


# -- routes ------------------------------------------------------------------------------------------------

async def capability(call: Call) -> Response:
    await run_in_threadpool(_record, call.ctx, AuditRecord("metadata", call.principal))
    return fhir(capability_statement(call.request.app.state.specs))


def capability_statement(specs: Sequence[RouteSpec]) -> dict[str, Any]:
    """The CapabilityStatement of the routes served: every resource type, interaction and search parameter a
    route declares, in the order of the route table (so it says what is there, and nothing else)."""
    resources: dict[str, dict[str, Any]] = {}
    system = [{"code": code} for code in dict.fromkeys(
        s.interaction for s in specs if s.resource is None and s.interaction is not None)]
    for spec in specs:
        if spec.resource is None or spec.interaction is None:
            continue
        entry = resources.setdefault(spec.resource, {"type": spec.resource, "interaction": [], "searchParam": []})
        if spec.interaction.startswith("$"):
            # A type-level operation of kroniker's own (described in docs/server.md), not an interaction.
            name = spec.interaction[1:]
            entry.setdefault("operation", []).append({
                "name": name, "definition": f"https://kroniker.example/fhir/OperationDefinition/{spec.resource}-{name}"})
            continue
        if {"code": spec.interaction} not in entry["interaction"]:
            entry["interaction"].append({"code": spec.interaction})
        for name, kind in spec.search:
            if {"name": name, "type": kind} not in entry["searchParam"]:
                entry["searchParam"].append({"name": name, "type": kind})
        if any(s.resource == spec.resource and s.interaction == "vread" for s in specs):
            entry["versioning"] = "versioned"
    roles = ", ".join(ROLES)
    return {
        "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
        "date": dt.date.today().isoformat(), "fhirVersion": "4.0.1",
        "format": ["json", "xml", formats.FHIR_JSON, formats.FHIR_XML],  # formats.py: what every FHIR route answers
        # patching.py: the patch documents PATCH takes (FHIRPath Patch in FHIR JSON and XML, JSON Patch)
        **({"patchFormat": list(patching.PATCH_FORMATS)} if any(s.interaction == "patch" for s in specs) else {}),
        "software": {"name": "kroniker reference server", "version": __version__},
        "implementation": {"description": "MedCom Shared Notes and ConditionList shared as through DDS"},
        "instantiates": ["https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder"],
        "rest": [{"mode": "server", "security": {
            "cors": False,
            "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                     "code": "OAuth"}], "text": "Bearer token"}],
            "description": "Every route except [base]/metadata and /health needs 'Authorization: Bearer <token>', "
                           "a signed token (kroniker token) that names the caller's role "
                           f"({roles}) and identifiers; what each role may do is the route's access rule "
                           "(reference_server/policy.py)."},
            "resource": [{k: v for k, v in r.items() if v} for r in resources.values()],
            **({"interaction": system} if system else {})}],
    }


async def health(call: Call) -> Response:
    await run_in_threadpool(_record, call.ctx, AuditRecord("health", call.principal))
    return PlainJSON({"status": "ok", "version": __version__})


async def submit(call: Call) -> Response:
    principal = call.who
    # Whether this caller may share anything at all (its own organisation's documents); the document's own
    # author is asked about once it is known.
    decision = call.rule(principal, principal.sor)
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden")
    replaces = call.one("replaces")
    if replaces is not None:
        replaces = inputs.resource_id(replaces, "replaced-not-found")
    content_type = inputs.media_type(call.request.headers.get("content-type")) or FHIR_JSON
    if content_type not in DOCUMENT_TYPES:
        raise ApiError(415, "media-type", code="not-supported", found=content_type)
    return await anyio.to_thread.run_sync(_submit, call, replaces, limiter=call.ctx.submitting)


async def system_post(call: Call) -> Response:
    """POST [base]: a document Bundle (as POST [base]/Bundle), or a transaction whose one entry is a POST of a
    document Bundle, answered as a transaction-response. One document, stored in one transaction: all or nothing."""
    data: Any = None
    content_type = call.request.headers.get("content-type")
    if "json" in (inputs.media_type(content_type) or FHIR_JSON):
        try:
            data = json.loads(call.body)
        except (ValueError, RecursionError):
            data = None  # not JSON: the submission says what is wrong with it
    elif formats.is_xml(content_type) and formats.root_bundle_type(call.body) == "transaction":
        data = await run_in_threadpool(formats.read_xml, call.body, call.ctx.validator.limits, call.lang)
    if not (isinstance(data, dict) and data.get("resourceType") == "Bundle" and data.get("type") == "transaction"):
        return await submit(call)
    if mhd.is_provide_bundle(data):
        return await mhd.provide_bundle(call, data)  # MHD ITI-65: a SubmissionSet, its documents
    entries = data.get("entry")
    entry = entries[0] if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict) else {}
    request, document = entry.get("request"), entry.get("resource")
    if not (isinstance(request, dict) and request.get("method") == "POST" and request.get("url") == "Bundle"
            and isinstance(document, dict) and document.get("resourceType") == "Bundle"
            and document.get("type") == "document"):
        decision = call.rule(call.who, call.who.sor)  # whether this caller may submit at all comes first
        if not decision.allowed:
            raise ApiError(decision.status, decision.reason, code="forbidden")
        raise ApiError(400, "transaction-shape", code="not-supported")
    if formats.is_xml(content_type):  # an XML transaction's document is stored as XML, as it came
        call.body = formats.to_xml(document).encode("utf-8")
    else:
        try:
            call.body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, and refused as such by the submission
            call.body = json.dumps(document).encode("ascii")
    answer = await submit(call)
    if answer.status_code >= 300:
        return answer
    docref = json.loads(bytes(answer.body))
    created = answer.status_code == 201
    return fhir({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "transaction-response", "entry": [{
        "fullUrl": answer.headers["location"], "resource": docref,
        "response": {"status": "201 Created" if created else "200 OK", "location": answer.headers["location"],
                     "etag": answer.headers.get("etag", 'W/"1"'), "lastModified": docref["meta"]["lastUpdated"]}}]})


@dataclass
class Prepared:
    """A document validated, its metadata derived and its submission allowed: what the store is given."""

    meta: DocumentMeta
    body: bytes
    content_type: str
    standard: str
    replaces: str | None
    bundled: list[dict[str, Any]]
    report: Report


def _submit(call: Call, replaces: str | None) -> Response:
    ctx, principal = call.ctx, call.who
    prepared = _prepare(call, call.body, replaces)
    if isinstance(prepared, Response):
        return prepared
    meta, url = prepared.meta, base_url(call.request, ctx.settings)
    action = "replace" if replaces else "submit"
    rec = AuditRecord(action, principal, patient_cpr=meta.patient_cpr, purpose="TREAT",
                      detail={"master_identifier": meta.master_identifier, "standard": prepared.standard})
    try:
        stored, created = ctx.store.submit(meta, prepared.body, prepared.content_type, prepared.standard,
                                           principal.sor or "", rec, replaces=replaces)
    except Conflict:
        raise ApiError(409, "duplicate-identifier", code="duplicate", finding="XDSDuplicateUniqueIdInRegistry",
                       identifier=meta.master_identifier) from None
    except StaleReplacement:
        raise ApiError(422, "replace-not-current", code="business-rule", id=replaces) from None
    headers = {"Location": f"{url}/fhir/DocumentReference/{stored.id}", **_etag(stored)}
    return fhir(stored.docref(url), 201 if created else 200, headers)


def _prepare(call: Call, body: bytes, replaces: str | None, doc_id: str | None = None) -> Prepared | Response:
    """Validate a document, derive its metadata and ask whether this caller may share (or replace) it: the
    Prepared submission, or the 422 answer (an OperationOutcome of the findings, refusal audited)."""
    ctx, principal, request = call.ctx, call.who, call.request
    try:
        parsed = parse(body, ctx.validator.limits)
    except Unreadable as exc:
        report = Report([exc.finding], source_name="<request>")
    else:
        where = inputs.bad_text_in(parsed.data)
        if where is not None:
            # FHIR strings hold no control characters, and Unicode no lone surrogates: nothing could store it.
            raise ApiError(422, "document-text", code="invalid", finding="encoding", field=where)
        report = ctx.validator.validate_parsed(parsed)
        ctx.validator.save_plans()  # writes only when this document made it compile something new
    if not report.valid or report.standard is None:
        oo = operation_outcome(report, call.lang)
        # The route it came by (POST /fhir/Bundle, ITI-65's POST /fhir, PUT /fhir/Bundle/{id}), as every refusal's.
        _record(ctx, AuditRecord("refused", principal, outcome="4", reason="invalid-document",
                                 detail={"method": request.method, "path": request.url.path, "status": 422,
                                         "errors": sorted(report.rules(Severity.ERROR))}))
        return fhir(oo, 422)
    data = parsed.data
    # What is stored and served is what the bytes are, whatever the request's header said.
    content_type = "application/fhir+xml" if parsed.format == "xml" else "application/fhir+json"
    try:
        meta = derive(data, report.standard.name, report.standard.version, content_type, body, doc_id)
    except MetadataError as exc:
        raise ApiError(422, "metadata", code="invalid", detail=str(exc)) from None
    url = base_url(request, ctx.settings)
    meta.docref["content"][0]["attachment"]["url"] = f"{url}/fhir/Bundle/{meta.id}"
    bundled = [e["resource"] for e in data.get("entry", [])
               if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    meta_report = ctx.validator.validate_resource(meta.docref, meta.profile, report.standard, trusted=bundled)
    ctx.validator.save_plans()
    if not meta_report.valid:
        oo = operation_outcome(meta_report, call.lang)
        raise ApiError(422, "metadata-invalid", code="invalid",
                       detail="; ".join(i["diagnostics"] for i in oo["issue"] if i["severity"] == "error"))
    decision = call.rule(principal, meta.author_org_sor)
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden", patient=meta.patient_cpr,
                       found=meta.author_org_sor, own=principal.sor)
    # A replacement sent again after a lost answer is the same submission: the store answers it as such.
    retry = ctx.store.find_identical(meta.master_identifier, body) if replaces else None
    if replaces and retry is None:
        old = ctx.store.get(replaces)
        decision = policy.may_replace(principal, old.info if old else None, meta.patient_cpr, meta.author_org_sor)
        if not decision.allowed:
            raise ApiError(decision.status, decision.reason, code="business-rule" if decision.status == 422
                           else "not-found" if decision.status == 404 else "forbidden", id=replaces)
    return Prepared(meta, body, content_type, str(report.standard), replaces, bundled, report)


def _record(ctx: Context, rec: AuditRecord) -> None:
    ctx.store.record(rec)


def _override(call: Call) -> str | None:
    """Værdispring: the consent override and its reason, as DDS's HSUID ConsentOverride."""
    value = call.request.headers.get("x-consent-override") or call.one("_consent-override")
    return value.strip() if value else None


def _patient_param(call: Call) -> str | None:
    """The patient a search or access log is about: a CPR number (patient.identifier or Patient/<CPR>)."""
    ident, ref = call.one("patient.identifier"), call.one("patient")
    if ident:
        system, _, value = ident.rpartition("|")
        if system and system != CPR_SYSTEM:
            raise ApiError(400, "patient-system", code="invalid", found=system[:100])
    elif ref:
        value = ref.rsplit("/", 1)[-1]  # Patient/<CPR>: the logical id is the CPR (no Patient resources here)
    else:
        return None
    if not value:
        return None
    if not _is_cpr(value):
        raise ApiError(400, "patient-format", code="invalid", found=value[:20], patient=value)
    return value


def _tokens(value: str | None) -> list[tuple[str | None, str]]:
    out = []
    for part in (value or "").split(","):
        part = part.strip()
        if part:
            system, sep, code = part.rpartition("|")
            out.append((system if sep and system else None, code))
    return out


DATE_PREFIXES = ("ge", "gt", "le", "lt", "eq")


@dataclass
class DateRange:
    """Where a search's date parameters leave the registration time: from (inclusive), to (exclusive), or empty
    (no time at all satisfies them, e.g. gt9999-12-31)."""

    lo: dt.datetime | None = None
    hi: dt.datetime | None = None
    empty: bool = False

    def after(self, t: dt.datetime | None, *, unbounded_means_none: bool) -> None:
        if t is None:
            self.empty = self.empty or unbounded_means_none
        elif self.lo is None or t > self.lo:
            self.lo = t

    def before(self, t: dt.datetime | None, *, unbounded_means_none: bool) -> None:
        if t is None:
            self.empty = self.empty or unbounded_means_none
        elif self.hi is None or t < self.hi:
            self.hi = t


def _date_range(values: list[str]) -> DateRange:
    """FHIR date search (ge, gt, le, lt, eq; repeated parameters all hold). A date is a Danish day."""
    out = DateRange()
    for v in values:
        prefix, raw = (v[:2], v[2:]) if v[:2] in DATE_PREFIXES else ("eq", v)
        start, end = _span(raw, v)
        if prefix in ("ge", "eq"):
            out.after(start, unbounded_means_none=False)  # from before the calendar: from anything
        if prefix == "gt":
            out.after(end, unbounded_means_none=True)  # after the calendar's last day: nothing
        if prefix in ("le", "eq"):
            out.before(end, unbounded_means_none=False)
        if prefix == "lt":
            out.before(start, unbounded_means_none=True)
    return out


def _span(raw: str, given: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The time a date value stands for, [start, end) as naive UTC; None where it leaves the calendar."""
    if "T" in raw:
        try:
            t = instant(raw)
        except (ValueError, OverflowError):  # a valid dateTime whose UTC falls outside the calendar
            t = None
        if t is None:
            raise ApiError(400, "bad-date", code="invalid", found=given[:40])
        try:
            return t, t + dt.timedelta(seconds=1)
        except OverflowError:
            return t, None
    day = inputs.calendar_date(raw)
    if day is None:
        raise ApiError(400, "bad-date", code="invalid", found=given[:40])
    return inputs.danish_day_start(day), inputs.danish_day_end(day)


SORTS = {"-date": True, "date": False}  # _sort value: newest first?


@dataclass(frozen=True)
class Paging:
    """A search's page: _count (bounded), _offset and _sort (date or -date, newest first by default)."""

    count: int
    offset: int
    newest_first: bool

    @classmethod
    def of(cls, call: Call, default: int, maximum: int) -> Paging:
        count_param, offset_param, sort = call.one("_count"), call.one("_offset"), call.one("_sort")
        count = min(inputs.whole_number("_count", count_param) if count_param is not None else default, maximum)
        offset = inputs.whole_number("_offset", offset_param) if offset_param is not None else 0
        if sort is not None and sort not in SORTS:
            raise ApiError(400, "bad-sort", code="not-supported", found=sort[:40])
        return cls(count, offset, SORTS[sort or "-date"])

    def links(self, call: Call, path: str, total: int) -> list[dict[str, str]]:
        """self, and next and previous where there are such pages: each the whole query again (as a GET of the
        search route at path), with only _count and _offset changed."""
        url = f"{base_url(call.request, call.ctx.settings)}{path}"
        kept = [(k, v) for k, v in call.params if k not in ("_offset", "_count")]

        def at(offset: int) -> str:
            return f"{url}?{urlencode([*kept, ('_count', str(self.count)), ('_offset', str(offset))])}"

        out = [{"relation": "self", "url": at(self.offset)}]
        if self.count > 0 and self.offset + self.count < total:
            out.append({"relation": "next", "url": at(self.offset + self.count)})
        if self.count > 0 and self.offset > 0:
            out.append({"relation": "previous", "url": at(max(0, self.offset - self.count))})
        return out


async def search(call: Call) -> Response:
    items = call.params
    if call.request.method == "POST":
        # FHIR's POST _search: parameters in the form and the query string together, bounded together.
        items = inputs.check_parameters(
            items + inputs.form(call.body, call.request.headers.get("content-type"), call.ctx.settings),
            call.ctx.settings)
        if any(k == "_format" for k, _ in items):  # FHIR lets the form carry _format too
            call.params = items
            call.wanted = formats.negotiate(call.request, call.one("_format"))
            if call.wanted.refused is not None:
                raise ApiError(406, "not-acceptable", code="not-supported", found=call.wanted.refused)
    call.params = items
    return await run_in_threadpool(_search, call)


def _search(call: Call, detail: dict[str, Any] | None = None) -> Response:
    """ITI-67. A repeated parameter must hold for each value (AND); commas within a value are OR. `detail`: more
    for the one audit record (a page that shows more than the search, pages.py)."""
    ctx, principal, items, request = call.ctx, call.who, call.params, call.request
    params: dict[str, list[str]] = {}
    for k, v in items:
        params.setdefault(k, []).append(v)
    patient, status = _patient_param(call), call.one("status") or "current"
    if not patient:
        raise ApiError(400, "missing-param", code="required", finding="XDSStoredQueryMissingParam")
    paging = Paging.of(call, ctx.settings.page_size, ctx.settings.max_page_size)
    statuses = [s for s in status.split(",") if s]
    decision = _read_decision(ctx, call.rule, principal, patient, _override(call))
    dates = _date_range(params.get("date", []))
    q = SearchQuery(patient, statuses,
                    [_tokens(v) for v in params.get("type", [])],
                    [[c for _, c in _tokens(v)] for v in params.get("category", [])],
                    [[c for _, c in _tokens(v)] for v in params.get("author.identifier", [])],
                    [inputs.token("event", v) for v in params.get("event", [])], dates.lo, dates.hi)
    found = [] if decision.nothing or dates.empty else ctx.store.search(q)
    visible = [d for d in found if decision.visible(d.info)]
    if not paging.newest_first:
        visible.reverse()  # the store answers newest first
    page = visible[paging.offset:paging.offset + paging.count]
    url = base_url(request, ctx.settings)
    # As DDS's own audit log, the record does not say whether blocks filtered anything; MinLog shows værdispring.
    _record(ctx, AuditRecord("search", principal, patient_cpr=patient, documents=[d.id for d in page],
                             purpose="TREAT" if principal.role == "clinician" else "PATRQT",
                             override=decision.override, minlog=decision.minlog,
                             detail={"query": items, "returned": len(page), **(detail or {})},
                             on_behalf=decision.acting_for))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(visible),
        "link": paging.links(call, "/fhir/DocumentReference", len(visible)),
        "entry": [{"fullUrl": f"{url}/fhir/DocumentReference/{d.id}", "resource": d.docref(url),
                   "search": {"mode": "match"}} for d in page],
    }
    if decision.hidden:
        # Said whenever the patient has a block that applies to this reader, whether or not it hid anything
        # from this answer: a warning only when something was hidden would tell, question by question, what
        # the blocked documents are (their codes, authors and dates).
        bundle["entry"].append({"resource": {"resourceType": "OperationOutcome", "issue": [{
            "severity": "warning", "code": "suppressed",
            "details": {"coding": [{"system": "urn:kroniker:finding", "code": "filtered-by-block"}]},
            "diagnostics": messages.render("srv-filtered", {}, call.lang)}]}, "search": {"mode": "outcome"}})
    return fhir(bundle)


def proxies_for(ctx: Context, principal: Principal, patient: str | None) -> list[policy.Proxy]:
    """The proxies between a citizen and another patient (none to look up for anyone else)."""
    if principal.role != "citizen" or not principal.cpr or not patient or patient == principal.cpr:
        return []
    return ctx.store.proxies_of(principal.cpr, patient)


def _read_decision(ctx: Context, rule: Rule, principal: Principal, patient: str,
                   override: str | None) -> policy.Decision:
    relations = ctx.store.relations(patient) if principal.role == "clinician" else []
    blocks = ctx.store.active_blocks(patient) if principal.role == "clinician" else []
    decision = rule(principal, patient, relations, blocks, override, utcnow(), proxies_for(ctx, principal, patient),
                    ctx.settings.embargo)
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden" if decision.status == 403 else "invalid",
                       patient=patient)
    return decision


async def read_docref(call: Call) -> Response:
    return await run_in_threadpool(_read_one, call, False)


async def retrieve(call: Call) -> Response:
    return await run_in_threadpool(_read_one, call, True)


async def vread_docref(call: Call) -> Response:
    return await run_in_threadpool(_read_one, call, False, "vread")


async def history_docref(call: Call) -> Response:
    return await run_in_threadpool(_read_one, call, False, "history")


def _etag(stored: Any) -> dict[str, str]:
    return {"ETag": f'W/"{stored.row.get("version") or 1}"'}


def _read_one(call: Call, content: bool, versions: str | None = None) -> Response:
    ctx, principal, request = call.ctx, call.who, call.request
    doc_id = inputs.resource_id(request.path_params["id"], "unknown-document")
    stored = ctx.store.get(doc_id)
    if stored is None:
        raise ApiError(404, "unknown-document", code="not-found", id=doc_id)
    patient = stored.row["patient_cpr"]
    try:
        decision = _read_decision(ctx, call.rule, principal, patient, _override(call))
    except ApiError as exc:
        # Whether a document exists is itself health data: the refusal does not say more than 'not here'.
        if exc.key == "citizen-other-patient":
            raise ApiError(404, "unknown-document", code="not-found", id=doc_id) from None
        raise
    action = "retrieve" if content else "read-metadata"
    if decision.nothing or not decision.visible(stored.info):
        # Blocked, or under its type's embargo: answered as not here (an embargoed document is not yet the
        # citizen's to know of).
        held = policy.embargoed(decision.embargo, stored.info)
        _record(ctx, AuditRecord(action, principal, outcome="4", patient_cpr=patient,
                                 reason="embargo" if held else "blocked", minlog=False, on_behalf=decision.acting_for,
                                 detail={"id": doc_id}))
        return outcome(404, "unknown-document", call.lang, code="not-found", id=doc_id)
    if stored.row["status"] == "entered-in-error":
        _record(ctx, AuditRecord("retrieve", principal, outcome="4", patient_cpr=patient, documents=[doc_id],
                                 reason="entered-in-error", detail={"id": doc_id}))
        return outcome(410, "gone", call.lang, code="deleted", id=doc_id)
    url = base_url(request, ctx.settings)
    detail: dict[str, Any] = {"id": doc_id}
    served = [stored]
    if versions is not None:
        served = ctx.store.versions(doc_id)
        if versions == "vread":
            vid = request.path_params["vid"]
            served = [v for v in served if str(v.row["version"]) == vid]  # FHIR ids of versions: 1, 2, ...
            if not served:
                raise ApiError(404, "unknown-version", code="not-found", id=doc_id, version=vid[:20])
            detail["version"] = vid
        else:
            detail["history"] = len(served)
    _record(ctx, AuditRecord(action, principal, patient_cpr=patient,
                             documents=[doc_id], purpose="TREAT" if principal.role == "clinician" else "PATRQT",
                             override=decision.override, minlog=decision.minlog, detail=detail,
                             on_behalf=decision.acting_for))
    if content:
        return formats.document(stored.row["content"], stored.row["content_type"], call.wanted,
                                ctx.validator.limits, _etag(stored))
    if versions == "history":
        return fhir({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "history", "total": len(served),
                     "link": [{"relation": "self", "url": f"{url}/fhir/DocumentReference/{doc_id}/_history"}],
                     "entry": [_history_entry(v, url) for v in served]})
    return fhir(served[0].docref(url), headers=_etag(served[0]))


def _history_entry(stored: Any, url: str) -> dict[str, Any]:
    first = stored.row["version"] == 1
    resource = stored.docref(url)
    return {"fullUrl": f"{url}/fhir/DocumentReference/{stored.id}", "resource": resource,
            "request": {"method": "POST" if first else "PUT",
                        "url": "DocumentReference" if first else f"DocumentReference/{stored.id}"},
            "response": {"status": "201 Created" if first else "200 OK", "etag": _etag(stored)["ETag"],
                         "lastModified": resource["meta"]["lastUpdated"]}}


def _reason_header(request: Request, settings: Settings) -> str | None:
    """`X-Reason`: the reason as a header, for clients that cannot add a query parameter to a patch
    (fhir-kit-client's patch() among them). Percent-encoded UTF-8 (RFC 3986), since a header is Latin-1 text:
    'Forkert%20patient' or 'forkert patient' alike; bounded as a query is."""
    raw = request.headers.get("x-reason")
    if raw is None:
        return None
    if len(raw) > settings.max_query_bytes:
        raise ApiError(400, "bad-reason-header", code="invalid")
    try:
        text = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, "bad-reason-header", code="invalid") from None
    if inputs.bad_text_in(text) is not None:
        raise ApiError(400, "bad-reason-header", code="invalid")
    return text


async def patch_docref(call: Call) -> Response:
    """FHIR's patch interaction, for what the server does with a DocumentReference: mark it entered-in-error,
    with a reason (patching.py: FHIRPath Patch in JSON or XML, JSON Patch, kroniker's own JSON). If-Match
    (W/"n", the ETag a read gives) makes it version-aware: a stale version is 412 and nothing changes."""
    principal, ctx = call.who, call.ctx
    decision = call.rule(principal)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")
    change = await run_in_threadpool(patching.read, call.body, call.request.headers.get("content-type"),
                                     ctx.settings, ctx.validator.limits, call.lang)
    reason = change.reason
    if reason is None:  # a standard patch says what, not why: the reason comes in the query (or a header)
        reason = call.one("reason")
        if reason is None:
            reason = _reason_header(call.request, ctx.settings)
        if reason is None or not reason.strip():
            raise ApiError(400, "patch-reason", code="required")
    if_match = _if_match(call.request)
    doc_id = inputs.resource_id(call.request.path_params["id"], "unknown-document")

    def work() -> Response:
        stored = ctx.store.get(doc_id)
        if stored is None:
            raise ApiError(404, "unknown-document", code="not-found", id=doc_id)
        patient, version = stored.row["patient_cpr"], int(stored.row.get("version") or 1)
        if if_match is not None and str(version) not in if_match:
            raise ApiError(412, "patch-stale", code="conflict", id=doc_id, current=version, patient=patient,
                           given=", ".join(sorted(if_match))[:60])
        url = base_url(call.request, ctx.settings)
        failed = patching.failed_test(change, stored.docref(url))
        if failed is not None:
            raise ApiError(409, "patch-test-failed", code="conflict", id=doc_id, path=failed, patient=patient)
        rec = AuditRecord("status", principal, patient_cpr=patient, documents=[doc_id], reason=reason,
                          detail={"status": change.status, "patch": change.form})
        # What was checked (If-Match, the tests) was checked against this version: the change is made only while
        # the document is still at it.
        guarded = if_match is not None or change.json_patch is not None
        updated = ctx.store.set_status(doc_id, change.status, reason, rec,
                                       expected_version=version if guarded else None)
        if updated is None:
            now = ctx.store.get(doc_id)
            if now is None:
                raise ApiError(404, "unknown-document", code="not-found", id=doc_id)
            if if_match is not None:
                raise ApiError(412, "patch-stale", code="conflict", id=doc_id, patient=patient,
                               current=now.row.get("version") or 1, given=", ".join(sorted(if_match))[:60])
            raise ApiError(409, "patch-changed", code="conflict", id=doc_id, patient=patient)
        return fhir(updated.docref(url), headers=_etag(updated))

    return await run_in_threadpool(work)


ETAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*')


def _if_match(request: Request) -> set[str] | None:
    """The versions an If-Match header allows (the values of its ETags, weak or strong: FHIR's ETags are weak,
    W/"n"); None without the header or with `*` (any version of a document that exists)."""
    values = request.headers.getlist("if-match")
    if not values:
        return None
    header = ",".join(values)
    if header.strip() == "*":
        return None
    out = set()
    for part in header.split(","):
        m = ETAG.fullmatch(part)
        if m is None:
            raise ApiError(400, "patch-if-match", code="invalid", found=header[:60])
        out.add(m.group(1))
    return out


async def audit_log(call: Call) -> Response:
    principal, ctx = call.who, call.ctx
    patient = _patient_param(call)
    proxies = await run_in_threadpool(proxies_for, ctx, principal, patient)
    decision = call.rule(principal, patient, proxies, utcnow())
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden", patient=patient)
    citizen = principal.role == "citizen"
    if citizen and not decision.acting_for:
        patient = principal.cpr
    paging = Paging.of(call, 100, 1000)

    def work() -> Response:
        found, total = audit.rows(ctx.store.engine, patient_cpr=patient, minlog_only=citizen, limit=paging.count,
                                  offset=paging.offset, newest_first=paging.newest_first)
        _record(ctx, AuditRecord("audit", principal, patient_cpr=patient, detail={"returned": len(found)},
                                 minlog=decision.minlog, on_behalf=decision.acting_for))
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total,
                                  "link": paging.links(call, "/fhir/AuditEvent", total), "entry": [
            {"resource": audit.as_audit_event(r, for_citizen=citizen), "search": {"mode": "match"}} for r in found]}
        return fhir(bundle)

    return await run_in_threadpool(work)


async def add_block(call: Call) -> Response:
    principal, ctx = call.who, call.ctx
    body = inputs.json_object(call.body, ctx.settings)
    patient = body.get("patient") or principal.cpr
    if not isinstance(patient, str):
        raise ApiError(400, "block-patient", code="required")
    if not _is_cpr(patient):
        raise ApiError(400, "bad-field", code="invalid", field="patient")
    decision = call.rule(principal, patient)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden", patient=patient)
    problem = policy.validate_block(body)
    if problem:
        raise ApiError(400, problem, code="invalid", field=policy.bad_field(body) or "")
    start, end = _period(body)
    rec = AuditRecord("block", principal, patient_cpr=patient, detail={k: body.get(k) for k in (
        "kind", "clinician", "organisation", "start", "end")})
    bid = await run_in_threadpool(ctx.store.add_block, patient, body["kind"], body.get("clinician"),
                                  body.get("organisation"), start, end, principal.actor, rec)
    return PlainJSON({"id": bid, "patient": patient, "kind": body["kind"]}, status_code=201)


def _period(body: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A block's or relation's start and end. A date is a Danish day and the end day is included: 'to 30 June'
    lasts until 1 July begins in Denmark. A dateTime is that instant (the end is where it stops)."""
    start, end = _when(body.get("start"), end=False), _when(body.get("end"), end=True)
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "bad-period", code="invalid", start=body["start"][:40], end=body["end"][:40])
    return start, end


def _when(value: Any, *, end: bool) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ApiError(400, "bad-date", code="invalid", found=str(value)[:40])
    if "T" in value:
        try:
            t = instant(value)
        except (ValueError, OverflowError):
            t = None
        if t is None:
            raise ApiError(400, "bad-date", code="invalid", found=value[:40])
        return t
    day = inputs.calendar_date(value)
    if day is None:
        raise ApiError(400, "bad-date", code="invalid", found=value[:40])
    # None: the calendar's first day begins, or its last day ends, outside what the store holds (unbounded).
    return inputs.danish_day_end(day) if end else inputs.danish_day_start(day)


async def list_blocks(call: Call) -> Response:
    principal, ctx = call.who, call.ctx
    patient = call.one("patient") or principal.cpr
    if not patient:
        raise ApiError(400, "block-patient", code="required")
    if not _is_cpr(patient):
        raise ApiError(400, "bad-field", code="invalid", field="patient")
    decision = call.rule(principal, patient)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden", patient=patient)

    def work() -> Response:
        rows = ctx.store.blocks(patient, include_lifted=True)
        _record(ctx, AuditRecord("blocks", principal, patient_cpr=patient))
        return PlainJSON([{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()}
                             for r in rows])

    return await run_in_threadpool(work)


async def lift_block(call: Call) -> Response:
    principal, ctx = call.who, call.ctx
    bid = inputs.resource_id(call.request.path_params["id"], "unknown-block")
    row = await run_in_threadpool(ctx.store.block_row, bid)
    if row is None:
        raise ApiError(404, "unknown-block", code="not-found", id=bid)
    decision = call.rule(principal, row["patient_cpr"])
    if not decision.allowed:
        # Someone else's block is not theirs to know about either.
        raise ApiError(404, "unknown-block", code="not-found", id=bid)
    rec = AuditRecord("unblock", principal, patient_cpr=row["patient_cpr"], detail={"block": bid})
    done = await run_in_threadpool(ctx.store.lift_block, bid, principal.actor, rec)
    return PlainJSON({"id": bid, "lifted": done})


async def add_relation(call: Call) -> Response:
    principal, ctx = call.who, call.ctx
    decision = call.rule(principal)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")
    body = inputs.json_object(call.body, ctx.settings)
    patient, evidence = body.get("patient"), body.get("evidence")
    if not isinstance(patient, str) or not isinstance(evidence, str) or not (body.get("clinician")
                                                                              or body.get("organisation")):
        raise ApiError(400, "relation-body", code="invalid")
    bad = policy.bad_field(body)
    if bad:
        raise ApiError(400, "bad-field", code="invalid", field=bad)
    start, end = _period(body)
    rec = AuditRecord("relation", principal, patient_cpr=patient, detail={k: body.get(k) for k in (
        "clinician", "organisation", "evidence", "start", "end")})
    rid = await run_in_threadpool(ctx.store.add_relation, patient, body.get("clinician"), body.get("organisation"),
                                  evidence, start or utcnow(), end, rec)
    return PlainJSON({"id": rid}, status_code=201)



# -- the route table -----------------------------------------------------------------------------------------

# Every route, the access rule (policy.py) its handler asks, and the body it takes. Tests check that each route
# refuses the wrong role with its rule's own reason, and the app refuses to answer for a handler that did not ask.
PAGING = (("_count", "number"), ("_offset", "number"), ("_sort", "string"))
DOCREF_SEARCH = (("patient", "reference"), ("patient.identifier", "token"), ("status", "token"), ("type", "token"),
                 ("category", "token"), ("date", "date"), ("author.identifier", "token"), ("event", "token"),
                 *PAGING)
from kroniker.reference_server import (  # noqa: E402  (their handlers use this module's helpers)
    clinical_routes,
    mhd,
    pages,
    proxy_routes,
)

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/fhir/metadata", capability, policy.may_see_metadata, public=True),
    RouteSpec("GET", "/metadata", capability, policy.may_see_metadata, public=True),  # the old path, an alias
    RouteSpec("GET", "/health", health, policy.may_check_health, public=True),
    RouteSpec("POST", "/fhir", system_post, policy.may_submit, body="document", interaction="transaction"),
    # [base]/ as clients write it (fhirpy's execute("") among them): the same
    RouteSpec("POST", "/fhir/", system_post, policy.may_submit, body="document", interaction="transaction"),
    RouteSpec("POST", "/fhir/Bundle", submit, policy.may_submit, body="document", resource="Bundle",
              interaction="create"),
    RouteSpec("GET", "/fhir/Bundle/{id}", retrieve, policy.may_read, resource="Bundle", interaction="read"),
    RouteSpec("GET", "/fhir/DocumentReference", search, policy.may_read, resource="DocumentReference",
              interaction="search-type", search=DOCREF_SEARCH),
    RouteSpec("POST", "/fhir/DocumentReference/_search", search, policy.may_read, body="form",
              resource="DocumentReference", interaction="search-type", search=DOCREF_SEARCH),
    RouteSpec("GET", "/fhir/DocumentReference/{id}", read_docref, policy.may_read, resource="DocumentReference",
              interaction="read"),
    RouteSpec("GET", "/fhir/DocumentReference/{id}/_history/{vid}", vread_docref, policy.may_read,
              resource="DocumentReference", interaction="vread"),
    RouteSpec("GET", "/fhir/DocumentReference/{id}/_history", history_docref, policy.may_read,
              resource="DocumentReference", interaction="history-instance"),
    RouteSpec("PATCH", "/fhir/DocumentReference/{id}", patch_docref, policy.may_administer, body="json",
              resource="DocumentReference", interaction="patch"),
    RouteSpec("GET", "/fhir/AuditEvent", audit_log, policy.may_read_audit, resource="AuditEvent",
              interaction="search-type", search=(("patient", "reference"), ("patient.identifier", "token"),
                                                 *PAGING)),
    RouteSpec("POST", "/blocks", add_block, policy.may_manage_blocks, body="json"),
    RouteSpec("GET", "/blocks", list_blocks, policy.may_manage_blocks),
    RouteSpec("DELETE", "/blocks/{id}", lift_block, policy.may_manage_blocks),
    RouteSpec("POST", "/admin/relations", add_relation, policy.may_administer, body="json"),
    *clinical_routes.ROUTES,
    *proxy_routes.ROUTES,
    RouteSpec("PUT", "/fhir/Bundle/{id}", mhd.put_document, policy.may_submit, body="document", resource="Bundle",
              interaction="update"),
    RouteSpec("GET", "/fhir/List/{id}", mhd.read_list, policy.may_read, resource="List", interaction="read"),
    *pages.ROUTES,
)
ROUTE_RULES: dict[tuple[str, str], Callable[..., policy.Decision]] = {(r.method, r.path): r.rule for r in ROUTES}
PUBLIC = {(r.method, r.path) for r in ROUTES if r.public}


def routes_of(app: Starlette) -> set[tuple[str, str]]:
    """Every (method, path) the app answers (for the test that each has an access rule)."""
    out = set()
    for r in app.routes:
        for m in getattr(r, "methods", None) or ():
            if m != "HEAD":
                out.add((m, r.path))  # type: ignore[attr-defined]
    return out
