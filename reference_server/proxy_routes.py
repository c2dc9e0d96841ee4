"""Proxies through the reference server (issue 14, item 5): the admin registers, lists and ends them.

A proxy lets a citizen (the holder) read another citizen's (the subject's) documents and MinLog as the subject
would: the parent with custody (forældremyndighed) of a child under 15 — parents' digital access to the health data
of children under 15, sundhedsloven § 39 a as L 44 (2023-24) added it (spec/sharing-and-clinical.md §2.1) — or
the holder of a power of attorney (Digital Fuldmagt) that a citizen aged 15 or more gave (§2.2). The admin
endpoints stand in for the registers sundhed.dk asks (CPR's custody, Digital Fuldmagt), as /admin/relations
stands in for BRS (§4, "Admin/simulation APIs"). Who may read as a proxy is decided in policy.py (acting_for).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kroniker.reference_server import inputs, policy
from kroniker.reference_server.app import ApiError, Call, PlainJSON, RouteSpec, _period, _record
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.store import utcnow

# A stored proxy as the API shows it: the names POST takes (holder, subject), not the columns' (holder_cpr, ...).
_NAMES = {"holder_cpr": "holder", "subject_cpr": "subject"}


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {_NAMES.get(k, k): (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


def _ask(call: Call) -> None:
    decision = call.rule(call.who)
    if not decision.allowed:
        raise ApiError(403, decision.reason, code="forbidden")


async def add_proxy(call: Call) -> Response:
    """{"kind": "custody" | "fuldmagt", "holder": CPR, "subject": CPR, "start"?, "end"?}: the start defaults to
    now; custody ends at the latest when the child turns 15, and fuldmagt needs a grantor aged 15 or more."""
    _ask(call)
    ctx, principal = call.ctx, call.who
    body = inputs.json_object(call.body, ctx.settings)
    problem = policy.validate_proxy(body)
    if problem:
        raise ApiError(400, problem, code="invalid")
    start, end = _period(body)
    start = start or utcnow()
    if end is not None and end <= start:  # an end before now with no start given
        raise ApiError(400, "bad-period", code="invalid", start=start.isoformat(), end=str(body.get("end"))[:40])
    end, why = policy.proxy_period(body["kind"], body["subject"], start, end)
    if why:
        raise ApiError(422, why, code="business-rule")
    rec = AuditRecord("proxy", principal, patient_cpr=body["subject"], detail={
        "kind": body["kind"], "holder": body["holder"], "start": start.isoformat(),
        "end": end.isoformat() if end else None})
    pid = await run_in_threadpool(ctx.store.add_proxy, body["kind"], body["holder"], body["subject"], start, end,
                                  principal.actor, rec)
    return PlainJSON(_shown({"id": pid, "kind": body["kind"], "holder": body["holder"],
                                "subject": body["subject"], "start": start, "end": end}), status_code=201)


async def list_proxies(call: Call) -> Response:
    """GET /admin/proxies?holder=CPR and/or subject=CPR: every proxy between them, ended ones too."""
    _ask(call)
    ctx, principal = call.ctx, call.who
    holder, subject = call.one("holder"), call.one("subject")
    if not holder and not subject:
        raise ApiError(400, "proxy-query", code="required")
    for name, value in (("holder", holder), ("subject", subject)):
        if value and not policy._text(value, policy.IDENTIFIER_FORMATS["patient"]):
            raise ApiError(400, "bad-field", code="invalid", field=name)

    def work() -> Response:
        rows = ctx.store.proxy_rows(holder or None, subject or None)
        _record(ctx, AuditRecord("proxies", principal, patient_cpr=subject or holder,
                                 detail={"holder": holder, "subject": subject, "returned": len(rows)}))
        return PlainJSON([_shown(r) for r in rows])

    return await run_in_threadpool(work)


async def end_proxy(call: Call) -> Response:
    """DELETE /admin/proxies/{id}: the proxy ends now (its row stays, with who ended it)."""
    _ask(call)
    ctx, principal = call.ctx, call.who
    pid = inputs.resource_id(call.request.path_params["id"], "unknown-proxy")
    row = await run_in_threadpool(ctx.store.proxy_row, pid)
    if row is None:
        raise ApiError(404, "unknown-proxy", code="not-found", id=pid)
    rec = AuditRecord("proxy-end", principal, patient_cpr=row["subject_cpr"],
                      detail={"proxy": pid, "kind": row["kind"], "holder": row["holder_cpr"]})
    done = await run_in_threadpool(ctx.store.end_proxy, pid, principal.actor, rec)
    return PlainJSON({"id": pid, "ended": done})


# Joined to app.ROUTES (at its end). Admin routes, not FHIR ones: no resource type.
ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", "/admin/proxies", add_proxy, policy.may_administer, body="json"),
    RouteSpec("GET", "/admin/proxies", list_proxies, policy.may_administer),
    RouteSpec("DELETE", "/admin/proxies/{id}", end_proxy, policy.may_administer),
)
