"""The reference server: a Starlette app built by a factory from a Settings object.

Routes are declared in one table with the access rule each one follows (ROUTE_RULES); the rules themselves
are the pure functions of policy.py. Every request is recorded in the audit log, allowed or not.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kroniker import __version__
from kroniker.reference_server import audit, policy
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.db import make_engine, migrate
from kroniker.reference_server.metadata import MetadataError, derive, instant
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.store import Conflict, SearchQuery, StaleReplacement, Store, utcnow
from kroniker.reference_server.tokens import Principal, TokenError, Verifier, load_or_create_key
from kroniker.validators import messages
from kroniker.validators.findings import Report, Severity
from kroniker.validators.packages import PackageCache
from kroniker.validators.render import operation_outcome
from kroniker.validators.source import Unreadable, parse
from kroniker.validators.validate import Validator

log = logging.getLogger("kroniker.reference_server")

FHIR_JSON = "application/fhir+json"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"

# Every route and the access rule it follows (policy.py); a test checks that none is missing.
ROUTE_RULES: dict[tuple[str, str], str] = {
    ("GET", "/metadata"): "public: the CapabilityStatement (may_see_metadata)",
    ("GET", "/health"): "public: liveness, no data",
    ("POST", "/fhir/Bundle"): "source of the author organisation (may_submit, may_replace)",
    ("GET", "/fhir/Bundle/{id}"): "the citizen themself, or a clinician with a treatment relation (may_read)",
    ("GET", "/fhir/DocumentReference"): "the citizen themself, or a clinician with a treatment relation (may_read)",
    ("POST", "/fhir/DocumentReference/_search"): "as GET /fhir/DocumentReference (may_read)",
    ("GET", "/fhir/DocumentReference/{id}"): "as GET /fhir/DocumentReference (may_read)",
    ("PATCH", "/fhir/DocumentReference/{id}"): "admin (may_administer)",
    ("GET", "/fhir/AuditEvent"): "the citizen's own MinLog, or the admin's full log (may_read_audit)",
    ("POST", "/blocks"): "the citizen themself, or an admin on their behalf (may_manage_blocks)",
    ("GET", "/blocks"): "the citizen themself, or an admin (may_manage_blocks)",
    ("DELETE", "/blocks/{id}"): "the citizen themself, or an admin (may_manage_blocks)",
    ("POST", "/admin/relations"): "admin (may_administer)",
}
PUBLIC = {("GET", "/metadata"), ("GET", "/health")}


class ApiError(Exception):
    """An answer that is an OperationOutcome with an HTTP status."""

    def __init__(self, status: int, key: str, *, code: str = "processing", severity: str = "error",
                 finding: str | None = None, **params: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.code, self.severity, self.params = status, key, code, severity, params
        self.finding = finding or key


@dataclass
class Context:
    settings: Settings
    store: Store
    validator: Validator
    key: bytes
    submitting: anyio.CapacityLimiter
    verify: Verifier


def lang_of(request: Request) -> str:
    return "da" if request.headers.get("accept-language", "").lower().startswith("da") else "en"


def outcome(status: int, key: str, lang: str, *, code: str = "processing", severity: str = "error",
            finding: str | None = None, headers: dict[str, str] | None = None, **params: Any) -> JSONResponse:
    body = {"resourceType": "OperationOutcome", "issue": [{
        "severity": severity, "code": code,
        "details": {"coding": [{"system": "urn:kroniker:finding", "code": finding or key}]},
        "diagnostics": messages.render(f"srv-{key}", params, lang),
    }]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def fhir(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def base_url(request: Request, settings: Settings) -> str:
    return settings.base_url.rstrip("/") or str(request.base_url).rstrip("/")


# -- the app ---------------------------------------------------------------------------------------------

def create_app(settings: Settings | None = None, *, run_migrations: bool = True) -> Starlette:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database)
    if run_migrations:
        migrate(engine)
    key = load_or_create_key(settings.key_file)
    store = Store(engine, audit.load_or_create_key(settings.audit_key_file))
    if run_migrations:
        store.seal()  # a chain from before migration 0003 is re-keyed once (kroniker serve does it before workers)
    ctx = Context(settings, store, Validator(PackageCache(settings.package_cache)), key,
                  anyio.CapacityLimiter(settings.submit_threads), Verifier(key))

    def handler(fn: Callable[[Request, Context, Principal | None], Awaitable[Response]],
                public: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            lang = lang_of(request)
            principal: Principal | None = None
            try:
                if not public:
                    principal = authenticate(request, ctx)
                return await fn(request, ctx, principal)
            except ApiError as exc:
                await run_in_threadpool(_audit_refusal, ctx, request, principal, exc)
                return outcome(exc.status, exc.key, lang, code=exc.code, severity=exc.severity,
                               finding=exc.finding, **exc.params)
            except Exception:  # never a stack trace to the caller; the log keeps it
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                await run_in_threadpool(_audit_refusal, ctx, request, principal, ApiError(500, "internal"))
                return outcome(500, "internal", lang, code="exception")
        return endpoint

    routes = [
        Route("/metadata", handler(capability, public=True), methods=["GET"]),
        Route("/health", handler(health, public=True), methods=["GET"]),
        Route("/fhir/Bundle", handler(submit), methods=["POST"]),
        Route("/fhir/Bundle/{id}", handler(retrieve), methods=["GET"]),
        Route("/fhir/DocumentReference", handler(search), methods=["GET"]),
        Route("/fhir/DocumentReference/_search", handler(search), methods=["POST"]),
        Route("/fhir/DocumentReference/{id}", handler(read_docref), methods=["GET"]),
        Route("/fhir/DocumentReference/{id}", handler(patch_docref), methods=["PATCH"]),
        Route("/fhir/AuditEvent", handler(audit_log), methods=["GET"]),
        Route("/blocks", handler(add_block), methods=["POST"]),
        Route("/blocks", handler(list_blocks), methods=["GET"]),
        Route("/blocks/{id}", handler(lift_block), methods=["DELETE"]),
        Route("/admin/relations", handler(add_relation), methods=["POST"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            ctx.store.close()

    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed}, lifespan=lifespan)
    app.state.ctx = ctx
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    await run_in_threadpool(_audit_unrouted, request, 404, "no-route")
    return outcome(404, "no-route", lang_of(request), code="not-found", path=request.url.path)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    await run_in_threadpool(_audit_unrouted, request, 405, "method")
    return outcome(405, "method", lang_of(request), code="not-supported", method=request.method)


def _audit_unrouted(request: Request, status: int, key: str) -> None:
    """Requests no route answers are in the audit log too (with the caller, when the token says who)."""
    ctx: Context = request.app.state.ctx
    try:
        principal: Principal | None = authenticate(request, ctx)
    except ApiError:
        principal = None
    _audit_refusal(ctx, request, principal, ApiError(status, key))


def authenticate(request: Request, ctx: Context) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "no-token", code="login")
    try:
        return ctx.verify(token.strip())
    except TokenError as exc:
        raise ApiError(401, "bad-token", code="login", detail=str(exc)) from None


def _audit_refusal(ctx: Context, request: Request, principal: Principal | None, exc: ApiError) -> None:
    rec = AuditRecord("refused", principal, outcome="4" if exc.status < 500 else "8",
                      patient_cpr=exc.params.get("patient"), reason=exc.key,
                      detail={"method": request.method, "path": request.url.path, "status": exc.status})
    try:
        ctx.store.record(rec)
    except Exception:  # the refusal itself must still be answered
        log.exception("could not record a refusal in the audit log")


async def read_body(request: Request, ctx: Context) -> bytes:
    limit = ctx.settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too-large", code="too-long", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too-large", code="too-long", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


# -- routes ------------------------------------------------------------------------------------------------

async def capability(request: Request, ctx: Context, principal: Principal | None) -> Response:
    return fhir({
        "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
        "date": dt.date.today().isoformat(), "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "software": {"name": "kroniker reference server", "version": __version__},
        "implementation": {"description": "MedCom Shared Notes and ConditionList shared as through DDS"},
        "instantiates": ["https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder"],
        "rest": [{"mode": "server", "resource": [
            {"type": "DocumentReference", "interaction": [{"code": "read"}, {"code": "search-type"}],
             "searchParam": [{"name": n, "type": t} for n, t in (
                 ("patient", "reference"), ("patient.identifier", "token"), ("status", "token"), ("type", "token"),
                 ("category", "token"), ("date", "date"), ("author.identifier", "token"), ("event", "token"))]},
            {"type": "Bundle", "interaction": [{"code": "create"}, {"code": "read"}]},
            {"type": "AuditEvent", "interaction": [{"code": "search-type"}]},
        ]}],
    })


async def health(request: Request, ctx: Context, principal: Principal | None) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def submit(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    if principal.role != "source":
        raise ApiError(403, "only-sources-submit", code="forbidden")
    body = await read_body(request, ctx)
    replaces = request.query_params.get("replaces")
    content_type = request.headers.get("content-type", FHIR_JSON).split(";")[0].strip() or FHIR_JSON
    if content_type not in ("application/fhir+json", "application/json", "application/fhir+xml",
                            "application/xml"):
        raise ApiError(415, "media-type", code="not-supported", found=content_type)
    stored_type = "application/fhir+xml" if "xml" in content_type else "application/fhir+json"
    return await anyio.to_thread.run_sync(_submit, request, ctx, principal, body, stored_type, replaces,
                                          limiter=ctx.submitting)


def _submit(request: Request, ctx: Context, principal: Principal, body: bytes, content_type: str,
            replaces: str | None) -> Response:
    lang = lang_of(request)
    try:
        parsed = parse(body, ctx.validator.limits)
    except Unreadable as exc:
        report = Report([exc.finding], source_name="<request>")
    else:
        report = ctx.validator.validate_parsed(parsed)
    if not report.valid or report.standard is None:
        oo = operation_outcome(report, lang)
        _record(ctx, AuditRecord("refused", principal, outcome="4", reason="invalid-document",
                                 detail={"path": "/fhir/Bundle", "status": 422,
                                         "errors": sorted(report.rules(Severity.ERROR))}))
        return fhir(oo, 422)
    data = parsed.data
    # What is stored and served is what the bytes are, whatever the request's header said.
    content_type = "application/fhir+xml" if parsed.format == "xml" else "application/fhir+json"
    try:
        meta = derive(data, report.standard.name, report.standard.version, content_type, body)
    except MetadataError as exc:
        raise ApiError(422, "metadata", code="invalid", detail=str(exc)) from None
    url = base_url(request, ctx.settings)
    meta.docref["content"][0]["attachment"]["url"] = f"{url}/fhir/Bundle/{meta.id}"
    bundled = [e["resource"] for e in data.get("entry", [])
               if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    meta_report = ctx.validator.validate_resource(meta.docref, meta.profile, report.standard, trusted=bundled)
    if not meta_report.valid:
        oo = operation_outcome(meta_report, lang)
        raise ApiError(422, "metadata-invalid", code="invalid",
                       detail="; ".join(i["diagnostics"] for i in oo["issue"] if i["severity"] == "error"))
    decision = policy.may_submit(principal, meta.author_org_sor)
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
    action = "replace" if replaces else "submit"
    rec = AuditRecord(action, principal, patient_cpr=meta.patient_cpr, purpose="TREAT",
                      detail={"master_identifier": meta.master_identifier, "standard": str(report.standard)})
    try:
        stored, created = ctx.store.submit(meta, body, content_type, str(report.standard), principal.sor or "",
                                           rec, replaces=replaces)
    except Conflict:
        raise ApiError(409, "duplicate-identifier", code="duplicate", finding="XDSDuplicateUniqueIdInRegistry",
                       identifier=meta.master_identifier) from None
    except StaleReplacement:
        raise ApiError(422, "replace-not-current", code="business-rule", id=replaces) from None
    headers = {"Location": f"{url}/fhir/DocumentReference/{stored.id}"}
    return fhir(stored.docref(url), 201 if created else 200, headers)


def _record(ctx: Context, rec: AuditRecord) -> None:
    ctx.store.record(rec)


def _override(request: Request) -> str | None:
    """Værdispring: the consent override and its reason, as DDS's HSUID ConsentOverride."""
    value = request.headers.get("x-consent-override") or request.query_params.get("_consent-override")
    return value.strip() if value else None


def _patient_param(params: dict[str, str]) -> str | None:
    ident = params.get("patient.identifier")
    if ident:
        system, _, value = ident.rpartition("|")
        if system and system != CPR_SYSTEM:
            raise ApiError(400, "patient-system", code="invalid", found=system)
        return value or None
    ref = params.get("patient")
    if ref:
        return ref.rsplit("/", 1)[-1]  # Patient/<CPR>: the logical id is the CPR (no Patient resources here)
    return None


def _tokens(value: str | None) -> list[tuple[str | None, str]]:
    out = []
    for part in (value or "").split(","):
        part = part.strip()
        if part:
            system, sep, code = part.rpartition("|")
            out.append((system if sep and system else None, code))
    return out


def _date_range(values: list[str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    lo = hi = None
    for v in values:
        prefix, raw = (v[:2], v[2:]) if v[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", v)
        t = instant(raw) if "T" in raw else _date(raw)
        if t is None:
            raise ApiError(400, "bad-date", code="invalid", found=v)
        day = dt.timedelta(days=1) if "T" not in raw else dt.timedelta(seconds=1)
        if prefix in ("ge", "gt"):
            lo = t if prefix == "ge" else t + day
        elif prefix in ("le", "lt"):
            hi = t + day if prefix == "le" else t
        else:
            lo, hi = t, t + day
    return lo, hi


def _date(raw: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(raw[:10])
    except ValueError:
        return None


async def search(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    if request.method == "POST":
        form = await request.form()
        items = [(k, str(v)) for k, v in form.multi_items()]
    else:
        items = list(request.query_params.multi_items())
    return await run_in_threadpool(_search, request, ctx, principal, items)


def _search(request: Request, ctx: Context, principal: Principal, items: list[tuple[str, str]]) -> Response:
    """ITI-67. A repeated parameter must hold for each value (AND); commas within a value are OR."""
    params: dict[str, list[str]] = {}
    for k, v in items:
        params.setdefault(k, []).append(v)
    one = {k: v[-1] for k, v in params.items()}
    patient = _patient_param(one)
    if not patient or not one.get("status"):
        raise ApiError(400, "missing-param", code="required", finding="XDSStoredQueryMissingParam")
    try:
        count = min(int(one.get("_count", ctx.settings.page_size)), ctx.settings.max_page_size)
        offset = int(one.get("_offset", 0))
    except ValueError:
        raise ApiError(400, "bad-count", code="invalid") from None
    if count < 0 or offset < 0:
        raise ApiError(400, "bad-count", code="invalid")
    statuses = [s for s in one["status"].split(",") if s]
    override = _override(request)
    decision = _read_decision(ctx, principal, patient, override)
    lo, hi = _date_range(params.get("date", []))
    q = SearchQuery(patient, statuses,
                    [_tokens(v) for v in params.get("type", [])],
                    [[c for _, c in _tokens(v)] for v in params.get("category", [])],
                    [[c for _, c in _tokens(v)] for v in params.get("author.identifier", [])],
                    [_tokens(v) for v in params.get("event", [])], lo, hi)
    found = [] if decision.nothing else ctx.store.search(q)
    visible = [d for d in found if decision.visible(d.info)]
    filtered = len(found) - len(visible)
    page = visible[offset:offset + count]
    url = base_url(request, ctx.settings)
    # As DDS's own audit log, the record does not say whether blocks filtered anything; MinLog shows værdispring.
    _record(ctx, AuditRecord("search", principal, patient_cpr=patient, documents=[d.id for d in page],
                             purpose="TREAT" if principal.role == "clinician" else "PATRQT",
                             override=decision.override, minlog=decision.minlog,
                             detail={"query": items, "returned": len(page)}))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(visible),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [{"fullUrl": f"{url}/fhir/DocumentReference/{d.id}", "resource": d.docref(url),
                   "search": {"mode": "match"}} for d in page],
    }
    if count > 0 and offset + count < len(visible):
        from urllib.parse import urlencode

        nxt = [(k, v) for k, v in items if k not in ("_offset", "_count")]
        nxt += [("_count", str(count)), ("_offset", str(offset + count))]
        bundle["link"].append({"relation": "next", "url": f"{url}/fhir/DocumentReference?{urlencode(nxt)}"})
    if filtered:
        bundle["entry"].append({"resource": {"resourceType": "OperationOutcome", "issue": [{
            "severity": "warning", "code": "suppressed",
            "details": {"coding": [{"system": "urn:kroniker:finding", "code": "filtered-by-block"}]},
            "diagnostics": messages.render("srv-filtered", {}, lang_of(request))}]}, "search": {"mode": "outcome"}})
    return fhir(bundle)


def _read_decision(ctx: Context, principal: Principal, patient: str, override: str | None) -> policy.Decision:
    relations = ctx.store.relations(patient) if principal.role == "clinician" else []
    blocks = ctx.store.active_blocks(patient) if principal.role == "clinician" else []
    decision = policy.may_read(principal, patient, relations, blocks, override, utcnow())
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden" if decision.status == 403 else "invalid",
                       patient=patient)
    return decision


async def read_docref(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    return await run_in_threadpool(_read_one, request, ctx, principal, request.path_params["id"], False)


async def retrieve(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    return await run_in_threadpool(_read_one, request, ctx, principal, request.path_params["id"], True)


def _read_one(request: Request, ctx: Context, principal: Principal, doc_id: str, content: bool) -> Response:
    stored = ctx.store.get(doc_id)
    if stored is None:
        raise ApiError(404, "unknown-document", code="not-found", id=doc_id)
    patient = stored.row["patient_cpr"]
    try:
        decision = _read_decision(ctx, principal, patient, _override(request))
    except ApiError as exc:
        # Whether a document exists is itself health data: the refusal does not say more than 'not here'.
        if exc.key == "citizen-other-patient":
            raise ApiError(404, "unknown-document", code="not-found", id=doc_id) from None
        raise
    if decision.nothing or not decision.visible(stored.info):
        _record(ctx, AuditRecord("retrieve" if content else "read-metadata", principal, outcome="4",
                                 patient_cpr=patient, reason="blocked", minlog=False, detail={"id": doc_id}))
        return outcome(404, "unknown-document", lang_of(request), code="not-found", id=doc_id)
    if stored.row["status"] == "entered-in-error":
        _record(ctx, AuditRecord("retrieve", principal, outcome="4", patient_cpr=patient, documents=[doc_id],
                                 reason="entered-in-error", detail={"id": doc_id}))
        return outcome(410, "gone", lang_of(request), code="deleted", id=doc_id)
    # Content negotiation before the record: a 406 is a refusal (nothing was seen), not a look-up in MinLog.
    if content and not _acceptable(request.headers.get("accept", ""), stored.row["content_type"]):
        raise ApiError(406, "not-acceptable", code="not-supported", found=stored.row["content_type"],
                       patient=patient)
    _record(ctx, AuditRecord("retrieve" if content else "read-metadata", principal, patient_cpr=patient,
                             documents=[doc_id], purpose="TREAT" if principal.role == "clinician" else "PATRQT",
                             override=decision.override, minlog=decision.minlog, detail={"id": doc_id}))
    if content:
        return Response(stored.row["content"], media_type=stored.row["content_type"])
    return fhir(stored.docref(base_url(request, ctx.settings)))


async def patch_docref(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    decision = policy.may_administer(principal)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")
    body = _json(await read_body(request, ctx))
    status, reason = body.get("status"), body.get("reason")
    if status != "entered-in-error" or not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "patch-body", code="invalid")
    doc_id = request.path_params["id"]

    def work() -> Response:
        stored = ctx.store.get(doc_id)
        if stored is None:
            raise ApiError(404, "unknown-document", code="not-found", id=doc_id)
        rec = AuditRecord("status", principal, patient_cpr=stored.row["patient_cpr"], documents=[doc_id],
                          reason=reason, detail={"status": status})
        updated = ctx.store.set_status(doc_id, status, reason, rec)
        assert updated is not None
        return fhir(updated.docref(base_url(request, ctx.settings)))

    return await run_in_threadpool(work)


def _acceptable(accept: str, content_type: str) -> bool:
    """ITI-68 answers the document as submitted; a client that accepts none of that gets 406."""
    if not accept.strip():
        return True
    main = content_type.split("/")[0]
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("*/*", f"{main}/*", content_type, "application/json" if "json" in content_type else "",
                     "application/xml" if "xml" in content_type else ""):
            return True
    return False


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "not-json", code="invalid") from None
    if not isinstance(data, dict):
        raise ApiError(400, "not-json", code="invalid")
    return data


async def audit_log(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    params = dict(request.query_params)
    patient = _patient_param(params)
    decision = policy.may_read_audit(principal, patient)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden", patient=patient)
    citizen = principal.role == "citizen"
    if citizen:
        patient = principal.cpr
    count = min(int(params.get("_count", "100")) if params.get("_count", "100").isdigit() else 100, 1000)
    offset = int(params["_offset"]) if params.get("_offset", "").isdigit() else 0

    def work() -> Response:
        found, total = audit.rows(ctx.store.engine, patient_cpr=patient, minlog_only=citizen, limit=count,
                                  offset=offset)
        _record(ctx, AuditRecord("audit", principal, patient_cpr=patient, detail={"returned": len(found)}))
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total,
                                  "link": [{"relation": "self", "url": str(request.url)}], "entry": [
            {"resource": audit.as_audit_event(r, for_citizen=citizen), "search": {"mode": "match"}} for r in found]}
        if offset + count < total:
            from urllib.parse import urlencode

            nxt = [(k, v) for k, v in request.query_params.multi_items() if k not in ("_offset", "_count")]
            nxt += [("_count", str(count)), ("_offset", str(offset + count))]
            bundle["link"].append({"relation": "next", "url": f"{base_url(request, ctx.settings)}/fhir/AuditEvent?"
                                                            f"{urlencode(nxt)}"})
        return fhir(bundle)

    return await run_in_threadpool(work)


async def add_block(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    body = _json(await read_body(request, ctx))
    patient = body.get("patient") or principal.cpr
    if not isinstance(patient, str):
        raise ApiError(400, "block-patient", code="required")
    decision = policy.may_manage_blocks(principal, patient)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden", patient=patient)
    problem = policy.validate_block(body)
    if problem:
        raise ApiError(400, problem, code="invalid", field=policy.bad_field(body) or "")
    start = _when(body.get("start"))
    end = _when(body.get("end"))
    rec = AuditRecord("block", principal, patient_cpr=patient, detail={k: body.get(k) for k in (
        "kind", "clinician", "organisation", "start", "end")})
    bid = await run_in_threadpool(ctx.store.add_block, patient, body["kind"], body.get("clinician"),
                                  body.get("organisation"), start, end, principal.actor, rec)
    return JSONResponse({"id": bid, "patient": patient, "kind": body["kind"]}, status_code=201)


def _when(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ApiError(400, "bad-date", code="invalid", found=str(value))
    t = instant(value) if "T" in value else _date(value)
    if t is None:
        raise ApiError(400, "bad-date", code="invalid", found=value)
    return t


async def list_blocks(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    patient = request.query_params.get("patient") or principal.cpr
    if not patient:
        raise ApiError(400, "block-patient", code="required")
    decision = policy.may_manage_blocks(principal, patient)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden", patient=patient)

    def work() -> Response:
        rows = ctx.store.blocks(patient, include_lifted=True)
        _record(ctx, AuditRecord("blocks", principal, patient_cpr=patient))
        return JSONResponse([{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()}
                             for r in rows])

    return await run_in_threadpool(work)


async def lift_block(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    bid = request.path_params["id"]
    row = await run_in_threadpool(ctx.store.block_row, bid)
    if row is None:
        raise ApiError(404, "unknown-block", code="not-found", id=bid)
    decision = policy.may_manage_blocks(principal, row["patient_cpr"])
    if not decision.allowed:
        # Someone else's block is not theirs to know about either.
        raise ApiError(404, "unknown-block", code="not-found", id=bid)
    rec = AuditRecord("unblock", principal, patient_cpr=row["patient_cpr"], detail={"block": bid})
    done = await run_in_threadpool(ctx.store.lift_block, bid, principal.actor, rec)
    return JSONResponse({"id": bid, "lifted": done})


async def add_relation(request: Request, ctx: Context, principal: Principal | None) -> Response:
    assert principal is not None
    decision = policy.may_administer(principal)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")
    body = _json(await read_body(request, ctx))
    patient, evidence = body.get("patient"), body.get("evidence")
    if not isinstance(patient, str) or not isinstance(evidence, str) or not (body.get("clinician")
                                                                              or body.get("organisation")):
        raise ApiError(400, "relation-body", code="invalid")
    bad = policy.bad_field(body)
    if bad:
        raise ApiError(400, "bad-field", code="invalid", field=bad)
    start = _when(body.get("start")) or utcnow()
    end = _when(body.get("end"))
    rec = AuditRecord("relation", principal, patient_cpr=patient, detail={k: body.get(k) for k in (
        "clinician", "organisation", "evidence", "start", "end")})
    rid = await run_in_threadpool(ctx.store.add_relation, patient, body.get("clinician"), body.get("organisation"),
                                  evidence, start, end, rec)
    return JSONResponse({"id": rid}, status_code=201)


def routes_of(app: Starlette) -> set[tuple[str, str]]:
    """Every (method, path) the app answers (for the test that each has an access rule)."""
    out = set()
    for r in app.routes:
        for m in getattr(r, "methods", None) or ():
            if m != "HEAD":
                out.add((m, r.path))  # type: ignore[attr-defined]
    return out


