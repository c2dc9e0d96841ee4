"""The citizen's and the clinician's pages: server-rendered HTML (Jinja2), in Danish, readable without script.

Signing in: GET /login is a form where the user pastes the same bearer token the API takes (`kroniker token`);
POST /login verifies it with the API's own verifier and keeps it in an HttpOnly, SameSite=Strict cookie. The pages
are routes like the others (ROUTES in app.py, `page=True`): the app authenticates the cookie with the API's
function, each page asks its access rule in policy.py, and the data come from the API's own handlers (_search,
_read_one, add_block, lift_block), so the search, relation, block and værdispring rules, the audit records and
MinLog are the API's. A form that changes anything carries a CSRF token (an HMAC of the session) and is refused
without it. A note's HTML is sanitised with nh3 to MedCom's simplified HTML before it is shown; the pages carry
no script, and their Content-Security-Policy allows none.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import nh3
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kroniker.reference_server import audit, inputs, policy
from kroniker.reference_server.app import (
    SESSION_COOKIE,
    ApiError,
    Call,
    RouteSpec,
    _audit_refusal,
    _is_cpr,
    _read_one,
    _record,
    _search,
    add_block,
    lift_block,
    verify_token,
)
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.inputs import DANISH_TIME, BadInput
from kroniker.validators import messages
from kroniker.validators.identifiers import CPR_SYSTEM
from kroniker.validators.package_notes import VALUE_ATTACHMENT
from kroniker.validators.source import Unreadable, parse
from kroniker.validators.xhtml import SIMPLE_ELEMENTS

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
HEADERS = {
    # No script at all, no framing, nothing cached: these pages hold health data.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # (no-referrer would make a browser send its forms with Origin: null)
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
CITIZEN, CLINICIAN = "/min-side", "/kliniker/patient"
# Where a signed-in user's refusal page leads back to: their own page (the header's menu names it too).
HOMES = {"citizen": (CITIZEN, "Til Min side"), "clinician": (CLINICIAN, "Til Find patient")}
# Document types a clinician can filter by (the DocumentReference type code, any system).
DOC_TYPES = {"notat": ("Notat (MedCom Shared Notes)", "866144008"),
             "diagnosekort": ("Diagnosekort (MedCom ConditionList)", "11450-4")}
CARD_TYPE = DOC_TYPES["diagnosekort"][1]
OVERRIDES = {"consent": "patientens samtykke", "not-contactable": "patienten kan ikke kontaktes",
             "vital-interest": "hensyn til patientens vitale interesser"}
BLOCK_KINDS = {"professional": "En bestemt sundhedsperson", "organisation": "En organisation (SOR-nummer)",
               "period": "En periode", "general": "Alle sundhedspersoner (generel spærring)"}
ACTIONS = {"ITI-67": "Søgte i dine dokumenter", "ITI-68": "Læste et dokument",
           "ITI-66": "Læste en liste over delte dokumenter"}
STATUSES = {"active": "aktiv", "inactive": "inaktiv", "resolved": "afsluttet", "remission": "i bero",
            "recurrence": "tilbagefald", "relapse": "tilbagefald"}
TITLES = {400: "Forespørgslen kan ikke bruges", 401: "Log ind", 403: "Ingen adgang", 404: "Findes ikke",
          406: "Kan ikke vises", 410: "Dokumentet er slettet", 413: "For stor", 414: "For lang",
          415: "Forkert format"}
# MedCom's simplified HTML (FNUX): no attributes, no links, no images; script and style removed with content.
NOTE_TAGS = set(SIMPLE_ELEMENTS)


def sanitise(html: str) -> Markup:
    """A note's HTML reduced to MedCom's simplified HTML (MedCom's `x:` prefix read as XHTML)."""
    html = re.sub(r"<(/?)x:", r"<\1", html)
    return Markup(nh3.clean(html, tags=NOTE_TAGS, attributes={}, url_schemes=set(), strip_comments=True,
                            link_rel=None))


def csrf_token(key: bytes, session: str) -> str:
    return hmac.new(key, b"kroniker-pages-csrf\0" + session.encode("utf-8"), hashlib.sha256).hexdigest()


def render(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("csrf", "")
    values.setdefault("role", None)
    values.setdefault("finding", "")
    return HTMLResponse(_ENV.get_template(template).render(**values), status_code=status, headers=HEADERS)


def error_page(status: int, key: str, params: dict[str, Any], call: Call | None = None) -> Response:
    """A refusal as a readable page (the app's handler calls this for page routes)."""
    shown = {k: v for k, v in params.items() if k not in ("code", "severity", "finding")}
    text = messages.render(f"srv-{key}", shown, "da")
    title = TITLES.get(status, "Der skete en fejl" if status >= 500 else "Kan ikke vises")
    return _error_page(call, status, title, text, key)


def _error_page(call: Call | None, status: int, title: str, message: str, key: str) -> Response:
    """The refusal page: for a caller the request named (a session, or a token) the header's "Log ud" form with
    its CSRF token and a way back to their page, as on the other pages; for anyone else (no session, an expired
    one: 401) a link to /login."""
    who = call.principal if call is not None and status != 401 else None
    role = who.role if who is not None else None
    return render("error.html", status, title=title, message=message, code=status, finding=key, role=role,
                  csrf=_session_csrf(call) if call is not None and who is not None else "", home=HOMES.get(role or ""))


def _from_api(call: Call, response: Response, **params: Any) -> Response | None:
    """An API handler's refusal (an OperationOutcome it answered with) as a page, its message in Danish (with
    `params`; the API's own words when the finding has no message of its own); None when it succeeded."""
    if response.status_code < 400:
        return None
    body = json.loads(bytes(response.body))
    issue = (body.get("issue") or [{}])[0]
    key = ((issue.get("details") or {}).get("coding") or [{}])[0].get("code", "")
    text = messages.render(f"srv-{key}", params, "da") if f"srv-{key}" in messages.catalogue("da") \
        else issue.get("diagnostics", "")
    return _error_page(call, response.status_code, TITLES.get(response.status_code, "Kan ikke vises"), text, key)


def _form(call: Call) -> dict[str, str]:
    items = inputs.check_parameters(
        inputs.form(call.body, call.request.headers.get("content-type"), call.ctx.settings), call.ctx.settings)
    out: dict[str, str] = {}
    for k, v in items:
        if k in out:
            raise ApiError(400, "param-once", code="invalid", name=k[:64])
        out[k] = v
    return out


def _check_csrf(call: Call, form: dict[str, str]) -> None:
    session = call.request.cookies.get(SESSION_COOKIE, "")
    if not session or not hmac.compare_digest(form.get("csrf", ""), csrf_token(call.ctx.key, session)):
        raise ApiError(403, "csrf", code="forbidden")


def _session_csrf(call: Call) -> str:
    session = call.request.cookies.get(SESSION_COOKIE, "")
    return csrf_token(call.ctx.key, session) if session else ""


# -- views of stored documents and audit events ------------------------------------------------------------

def when(value: Any) -> str:
    """A FHIR date or dateTime as a Dane reads it (Danish time)."""
    if not isinstance(value, str) or not value:
        return ""
    if "T" not in value:
        try:
            return dt.date.fromisoformat(value).strftime("%d.%m.%Y")
        except ValueError:
            return value
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(DANISH_TIME).strftime("%d.%m.%Y kl. %H:%M")


def _sort_key(value: Any) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        t = None
    if t is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass
class Condition:
    text: str
    codes: str
    status: str
    onset: str
    recorded: str


@dataclass
class Document:
    """A stored document as the pages show it."""

    id: str
    kind: str  # "note" or "card"
    title: str
    type: str
    author: str
    when: str
    sort: dt.datetime
    registered: str
    events: list[str] = field(default_factory=list)
    html: list[Markup] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)


def _iso(t: Any) -> str | None:
    """A stored time (naive UTC) as an ISO instant."""
    return t.replace(tzinfo=dt.UTC).isoformat() if isinstance(t, dt.datetime) else None


def _coding_text(cc: Any) -> str:
    if not isinstance(cc, dict):
        return ""
    codings = [c for c in cc.get("coding") or [] if isinstance(c, dict)]
    return str(cc.get("text") or next((c.get("display") for c in codings if c.get("display")), "")
               or next((c.get("code") for c in codings if c.get("code")), ""))


TYPE_NAMES = {code: text.split(" (")[0] for text, code in DOC_TYPES.values()}


def document_view(docref: dict[str, Any], row: dict[str, Any], content: bytes | None, call: Call) -> Document:
    """The DocumentReference as served (and its stored row's author), and (when given) what the document itself
    says: the note's HTML (sanitised) or the diagnosis card's conditions."""
    type_code = next((c.get("code") for c in (docref.get("type") or {}).get("coding") or []), "")
    kind = "card" if type_code == CARD_TYPE else "note"
    period = (docref.get("context") or {}).get("period") or {}
    served = period.get("start") or _iso(row.get("doc_date")) or docref.get("date")
    authors = [str(a) for a in (row.get("author_person"), row.get("author_org_name") or row.get("author_org_sor"))
               if a]
    doc = Document(
        id=str(docref.get("id")), kind=kind, title=str(docref.get("description") or ""),
        type=TYPE_NAMES.get(str(type_code)) or _coding_text(docref.get("type")) or "Dokument",
        author=", ".join(authors),
        when=when(served), sort=_sort_key(served), registered=when(_iso(row.get("created")) or docref.get("date")),
        events=[f"{c.get('code')}" + (f" ({c.get('display')})" if c.get("display") else "")
                for e in (docref.get("context") or {}).get("event") or [] for c in e.get("coding") or []])
    if content is not None:
        _read_content(doc, content, call)
    return doc


def _read_content(doc: Document, content: bytes, call: Call) -> None:
    try:
        data = parse(content, call.ctx.validator.limits).data
    except Unreadable:
        return
    resources = [e["resource"] for e in (data.get("entry") or [] if isinstance(data, dict) else [])
                 if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    comp: dict[str, Any] = next((r for r in resources if r.get("resourceType") == "Composition"), {})
    doc.title = str(comp.get("title") or doc.title)
    for r in resources:
        if r.get("resourceType") == "Observation":
            for ext in r.get("extension") or []:
                att = ext.get("valueAttachment") if isinstance(ext, dict) and ext.get("url") == VALUE_ATTACHMENT \
                    else None
                if isinstance(att, dict) and isinstance(att.get("data"), str):
                    try:
                        doc.html.append(sanitise(base64.b64decode(att["data"], validate=True).decode(
                            "utf-8", "replace")))
                    except (binascii.Error, ValueError):
                        continue
        elif r.get("resourceType") == "Condition":
            codes = [f"{c.get('code')}" for c in (r.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
            status = next((c.get("code") for c in (r.get("clinicalStatus") or {}).get("coding") or []), "")
            doc.conditions.append(Condition(_coding_text(r.get("code")), ", ".join(codes),
                                            STATUSES.get(str(status), str(status or "")),
                                            when(r.get("onsetDateTime")), when(r.get("recordedDate"))))
    if not doc.html and doc.kind == "card":
        for section in comp.get("section") or []:
            div = (section.get("text") or {}).get("div") if isinstance(section, dict) else None
            if isinstance(div, str):
                doc.html.append(sanitise(div))


@dataclass
class LogRow:
    when: str
    who: str
    organisation: str
    what: str
    vaerdispring: str  # the reason in words, or ""


def log_view(event: dict[str, Any]) -> LogRow:
    """A MinLog entry (an AuditEvent as the API gives the citizen) in words."""
    agent = (event.get("agent") or [{}])[0]
    who = (agent.get("who") or {})
    location = agent.get("location") or {}
    subtype = (event.get("subtype") or [{}])[0]
    override = next((c.get("code") for p in event.get("purposeOfEvent") or [] for c in p.get("coding") or []
                     if c.get("system") == "urn:kroniker:vaerdispring"), None)
    return LogRow(when(event.get("recorded")),
                  str(who.get("display") or (who.get("identifier") or {}).get("value") or ""),
                  str(location.get("display") or (location.get("identifier") or {}).get("value") or ""),
                  ACTIONS.get(str(subtype.get("code")), str(subtype.get("display") or "")),
                  OVERRIDES.get(str(override), str(override)) if override else "")


@dataclass
class BlockRow:
    id: str
    kind: str
    target: str
    period: str
    created: str
    lifted: str


def block_view(row: dict[str, Any]) -> BlockRow:
    def day(t: dt.datetime | None) -> str:
        return when(t.replace(tzinfo=dt.UTC).isoformat()) if t else ""

    target = {"professional": f"Autorisations-id {row.get('clinician_auth_id')}",
              "organisation": f"SOR {row.get('org_sor')}"}.get(row["kind"], "")
    start, end = day(row.get("period_start")), day(row.get("period_end"))
    period = f"{start or '…'} – {end or '…'}" if start or end else "Ingen slutdato"
    return BlockRow(row["id"], BLOCK_KINDS.get(row["kind"], row["kind"]), target, period, day(row.get("created")),
                    day(row.get("lifted")))


def _documents(call: Call, detail: dict[str, Any] | None = None) -> tuple[list[Document], bool]:
    """The search as GET /fhir/DocumentReference answers it (same rules, audited the same, in one record with
    `detail`): the documents and whether the answer said that blocks may have hidden some."""
    response = _search(call, detail)
    bundle = json.loads(bytes(response.body))
    docs, warned = [], False
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "OperationOutcome":
            warned = True
        elif resource.get("resourceType") == "DocumentReference":
            stored = call.ctx.store.get(str(resource.get("id")))
            if stored is not None:
                docs.append(document_view(resource, stored.row, stored.row["content"], call))
    docs.sort(key=lambda d: d.sort, reverse=True)  # newest first by the note's own time
    return docs, warned


# -- routes --------------------------------------------------------------------------------------------------

async def front_door(call: Call) -> Response:
    """GET /: where a person who opens the server's address in a browser begins — the sign-in page."""
    await run_in_threadpool(_record, call.ctx, AuditRecord("front-door", None))
    return RedirectResponse("/login", status_code=303, headers=HEADERS)


async def login_form(call: Call) -> Response:
    await run_in_threadpool(_record, call.ctx, AuditRecord("sign-in-form", None))
    return render("login.html", title="Log ind", error="")


async def login(call: Call) -> Response:
    ctx, request = call.ctx, call.request
    try:
        try:
            token = _form(call).get("token", "").strip()
        except BadInput:
            token = ""
        if not _same_origin(call):
            # Login CSRF: another site's form must not sign the browser in as someone else.
            raise ApiError(403, "csrf", code="forbidden")
        if not token:
            raise ApiError(400, "login-token", code="required")
        principal = verify_token(token, ctx)
        if principal.role not in ("citizen", "clinician"):
            raise ApiError(403, "no-page-for-role", code="forbidden", role=principal.role)
    except ApiError as exc:
        await run_in_threadpool(_audit_refusal, ctx, request, None, exc)
        return render("login.html", exc.status, title="Log ind", finding=exc.key,
                      error=messages.render(f"srv-{exc.key}", exc.params, "da"))
    await run_in_threadpool(_record, ctx, AuditRecord("sign-in", principal))
    response = RedirectResponse(CITIZEN if principal.role == "citizen" else CLINICIAN, status_code=303,
                                headers=HEADERS)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=_https(call))
    return response


def _same_origin(call: Call) -> bool:
    """A request without an Origin header (not a browser's cross-site form), or from this server's own origin."""
    origin = call.request.headers.get("origin")
    if origin is None:
        return True
    own = {str(call.request.base_url).rstrip("/"), call.ctx.settings.base_url.rstrip("/")} - {""}
    return origin.rstrip("/") in own


def _https(call: Call) -> bool:
    """Whether the browser reaches the server over https (directly, or through the proxy Settings.base_url names)."""
    return call.request.url.scheme == "https" or call.ctx.settings.base_url.startswith("https://")


async def logout(call: Call) -> Response:
    ctx, request = call.ctx, call.request
    session = request.cookies.get(SESSION_COOKIE, "")
    principal = None
    if session:
        try:
            form = _form(call)
        except BadInput:
            form = {}  # no form, no token: refused as such
        _check_csrf(call, form)
        try:
            principal = verify_token(session, ctx)
        except ApiError:
            principal = None  # an expired session is signed out all the same
    await run_in_threadpool(_record, ctx, AuditRecord("sign-out", principal))
    response = render("logged_out.html", title="Du er logget ud")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_https(call))
    return response


async def citizen_page(call: Call) -> Response:
    principal = call.who
    decision = call.rule(principal)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")
    cpr = str(principal.cpr)
    call.params = [("patient.identifier", f"{CPR_SYSTEM}|{cpr}"), ("status", "current"),
                   ("_count", str(call.ctx.settings.max_page_size))]

    def work() -> Response:
        ctx = call.ctx
        # The access log: the citizen's MinLog as GET /fhir/AuditEvent gives it; the blocks as GET /blocks.
        found, total = audit.rows(ctx.store.engine, patient_cpr=cpr, minlog_only=True, limit=100, offset=0)
        log = [log_view(audit.as_audit_event(r, for_citizen=True)) for r in found]
        stored_blocks = ctx.store.blocks(cpr, include_lifted=True)
        blocks = [block_view(b) for b in stored_blocks]
        # The search asks the page's rule for this patient (may_read's citizen branch) and makes the request's one
        # audit record, which says what else the page showed.
        docs, _ = _documents(call, {"page": CITIZEN, "access_log": len(found), "blocks": len(stored_blocks)})
        return render("citizen.html", title="Min side", role="citizen", csrf=_session_csrf(call),
                      name=principal.name or "", notes=[d for d in docs if d.kind == "note"],
                      cards=[d for d in docs if d.kind == "card"], log=log, log_total=total, blocks=blocks,
                      kinds=BLOCK_KINDS)

    return await run_in_threadpool(work)


def _own_block_rule(call: Call) -> None:
    principal = call.who
    decision = call.rule(principal, principal.cpr)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")


def _block_form(call: Call) -> dict[str, str]:
    """A block form's fields, once the caller may manage their own blocks and the CSRF token holds."""
    _own_block_rule(call)
    try:
        form = _form(call)
    except BadInput as exc:
        raise ApiError.of(exc) from None
    _check_csrf(call, form)
    return form


async def add_block_page(call: Call) -> Response:
    form = _block_form(call)
    body: dict[str, Any] = {k: form[k].strip() for k in ("kind", "clinician", "organisation", "start", "end")
                            if form.get(k, "").strip()}
    if body.get("kind") != "professional":
        body.pop("clinician", None)
    if body.get("kind") != "organisation":
        body.pop("organisation", None)
    body["patient"] = call.who.cpr
    call.body = json.dumps(body).encode("utf-8")
    answer = await add_block(call)  # the API's own: validation, rule, audit record, one transaction
    return _from_api(call, answer) or RedirectResponse(f"{CITIZEN}#spaerringer", status_code=303, headers=HEADERS)


async def lift_block_page(call: Call) -> Response:
    _block_form(call)
    answer = await lift_block(call)
    return _from_api(call, answer) or RedirectResponse(f"{CITIZEN}#spaerringer", status_code=303, headers=HEADERS)


@dataclass
class Filters:
    cpr: str = ""
    type: str = ""
    start: str = ""
    end: str = ""
    event: str = ""
    override: str = ""


def _event_options(call: Call) -> list[tuple[str, str]]:
    """The care packages' event codes (the installed packages' note profiles), as (system|code, label)."""
    from kroniker.clinical.note import note_profiles
    from kroniker.reference_server.clinical_routes import content_of

    try:
        profiles = note_profiles(content_of(call.ctx))
    except Exception:  # no packages installed, or one unreadable: the filter still takes a typed code
        profiles = []
    return [(f"{p.coding['system']}|{p.coding['code']}", f"{p.package} ({p.coding['code']})") for p in profiles]


async def clinician_page(call: Call) -> Response:
    principal = call.who
    decision = call.rule(principal)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")
    f = Filters(*(call.one(n) or "" for n in ("cpr", "type", "from", "to", "event", "vaerdispring")))
    f = Filters(*(v.strip() for v in vars(f).values()))

    def work() -> Response:
        options = _event_options(call)
        values: dict[str, Any] = dict(title="Patientens dokumenter", role="clinician", csrf=_session_csrf(call), f=f,
                      types=DOC_TYPES, overrides=OVERRIDES, events=options, name=principal.name or "")
        if not f.cpr:
            _record(call.ctx, AuditRecord("page", principal, detail={"page": "kliniker"}))
            return render("clinician.html", docs=None, warned=False, **values)
        if not _is_cpr(f.cpr):
            raise ApiError(400, "patient-format", code="invalid", found=f.cpr[:20])
        params = [("patient.identifier", f"{CPR_SYSTEM}|{f.cpr}"), ("status", "current")]
        if f.type:
            if f.type not in DOC_TYPES:
                raise ApiError(400, "bad-field", code="invalid", field="type")
            params.append(("type", DOC_TYPES[f.type][1]))
        for prefix, value in (("ge", f.start), ("le", f.end)):
            if value:
                params.append(("date", f"{prefix}{value}"))
        if f.event:
            params.append(("event", f.event))
        if f.override:
            params.append(("_consent-override", f.override))
        call.params = [*params, ("_count", str(call.ctx.settings.max_page_size))]
        docs, warned = _documents(call)  # GET /fhir/DocumentReference's own search, rule and audit record
        return render("clinician.html", docs=docs, warned=warned, **values)

    return await run_in_threadpool(work)


async def note_page(call: Call) -> Response:
    principal = call.who
    answer = await run_in_threadpool(_read_one, call, True)  # ITI-68 as the API: rule, blocks, audit, MinLog
    doc_id = call.request.path_params["id"]
    refused = _from_api(call, answer, id=doc_id[:64])
    if refused is not None:
        return refused

    def work() -> Response:
        stored = call.ctx.store.get(doc_id)
        assert stored is not None
        doc = document_view(stored.docref(""), stored.row, bytes(answer.body), call)
        back = CITIZEN if principal.role == "citizen" else CLINICIAN
        return render("note.html", title=doc.title or doc.type, role=principal.role, csrf=_session_csrf(call),
                      doc=doc, back=back)

    return await run_in_threadpool(work)


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/", front_door, policy.may_sign_in, public=True, page=True),
    RouteSpec("GET", "/login", login_form, policy.may_sign_in, public=True, page=True),
    RouteSpec("POST", "/login", login, policy.may_sign_in, body="form", public=True, page=True),
    RouteSpec("POST", "/logout", logout, policy.may_sign_in, body="form", public=True, page=True),
    RouteSpec("GET", CITIZEN, citizen_page, policy.may_see_citizen_page, page=True),
    RouteSpec("POST", "/min-side/spaerringer", add_block_page, policy.may_manage_own_blocks, body="form", page=True),
    RouteSpec("POST", "/min-side/spaerringer/{id}/ophaev", lift_block_page, policy.may_manage_own_blocks,
              body="form", page=True),
    RouteSpec("GET", CLINICIAN, clinician_page, policy.may_see_clinician_page, page=True),
    RouteSpec("GET", "/notat/{id}", note_page, policy.may_read, page=True),
)
