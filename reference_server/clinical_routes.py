"""Questionnaire responses, their scores and triage through the reference server (issue 12, item 3).

The citizen answers the package's questionnaires from home (POST /fhir/QuestionnaireResponse, own CPR only); the
server checks the response against its Questionnaire from the installed packages (kroniker.clinical.score) and
stores it with its score Observations in one transaction with its audit record. The patient's own clinic — the
GP system (`source`) of the organisation with an active `assigned-gp` treatment relation (registered through
/admin/relations) — posts the GP's assessment, asks for the triage suggestion and records the GP's decision.
Reading follows policy.may_read_clinical: the citizen (own), a clinician with a treatment relation (blocks and
værdispring as for documents), the patient's own clinic; professionals' look-ups are in MinLog.
"""

from __future__ import annotations

import functools
import json
import uuid
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kroniker.clinical import Content, decide, score, triage
from kroniker.clinical import messages as clinical_messages
from kroniker.clinical.triage import overall_colour
from kroniker.reference_server import formats, inputs, policy
from kroniker.reference_server.app import (
    PAGING,
    ApiError,
    Call,
    Context,
    Paging,
    RouteSpec,
    _override,
    _patient_param,
    _record,
    base_url,
    fhir,
    proxies_for,
)
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.store import utcnow
from kroniker.validators.findings import Finding, Severity
from kroniker.validators.identifiers import CPR_SYSTEM
from kroniker.validators.packages import PackageCache

FINDING_SYSTEM = "urn:kroniker:finding"


@functools.lru_cache(maxsize=8)
def _content(cache_root: Path | None) -> Content:
    return Content(PackageCache(cache_root))


def content_of(ctx: Context) -> Content:
    return _content(ctx.settings.package_cache)


def _outcome(findings: list[Finding], lang: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": f.severity.label, "code": f.issue_type,
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": f.code}]},
        "diagnostics": clinical_messages.message(f, lang), "expression": [f.location]} for f in findings]}


def _response_body(call: Call) -> tuple[dict[str, Any], str]:
    """The posted QuestionnaireResponse (FHIR JSON or XML) and the CPR number its subject names."""
    body = formats.body_json(call.body, call.request.headers.get("content-type"), call.ctx.validator.limits,
                             call.lang)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "not-a-response", code="structure") from None
    if not isinstance(data, dict) or data.get("resourceType") != "QuestionnaireResponse":
        raise ApiError(422, "not-a-response", code="structure")
    where = inputs.bad_text_in(data)
    if where is not None:
        raise ApiError(422, "document-text", code="invalid", finding="encoding", field=where)
    ident = (data.get("subject") or {}).get("identifier") if isinstance(data.get("subject"), dict) else None
    if not isinstance(ident, dict) or ident.get("system") != CPR_SYSTEM or not isinstance(ident.get("value"), str) \
            or not ident["value"].isdigit() or len(ident["value"]) != 10:
        raise ApiError(422, "response-subject", code="required")
    return data, ident["value"]


def _ask_submit(call: Call, patient: str) -> policy.Decision:
    ctx, principal = call.ctx, call.who
    relations = ctx.store.relations(patient) if principal.role == "source" else []
    decision = call.rule(principal, patient, relations, utcnow())
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden", patient=patient)
    return decision


def _row(resource: dict[str, Any], kind: str, patient: str, submitter: str, questionnaire: str | None = None,
         derived_from: str | None = None) -> dict[str, Any]:
    return {"id": resource["id"], "resource_type": resource["resourceType"], "kind": kind, "patient_cpr": patient,
            "questionnaire": questionnaire, "derived_from": derived_from, "submitter": submitter,
            "resource": resource}


async def submit_response(call: Call) -> Response:
    data, patient = await run_in_threadpool(_response_body, call)  # XML is read there

    def work() -> Response:
        ctx, principal = call.ctx, call.who
        _ask_submit(call, patient)
        data["id"] = str(uuid.uuid4())  # the server's id: the score Observations point back to it
        scored = score(data, content_of(ctx), source="<request>")
        if not scored.valid:
            _record(ctx, AuditRecord("refused", principal, outcome="4", patient_cpr=patient,
                                     reason="invalid-response", detail={
                                         "path": "/fhir/QuestionnaireResponse", "status": 422,
                                         "errors": sorted({f.code for f in scored.findings
                                                           if f.severity >= Severity.ERROR})}))
            return fhir(_outcome(scored.findings, call.lang), 422)
        kind = "patient-response" if principal.role == "citizen" else "clinic-response"
        rows = [_row(data, kind, patient, principal.actor, scored.questionnaire)]
        rows += [_row(o, "score", patient, principal.actor, scored.questionnaire, data["id"])
                 for o in scored.observations]
        rec = AuditRecord("questionnaire-response", principal, patient_cpr=patient,
                          purpose="PATRQT" if principal.role == "citizen" else "TREAT",
                          detail={"id": data["id"], "questionnaire": scored.questionnaire,
                                  "scores": len(scored.observations)})
        ctx.store.put_clinical(rows, rec)
        return _created(call, "QuestionnaireResponse", data["id"])

    return await run_in_threadpool(work)


def _read_decision(call: Call, patient: str) -> policy.Decision:
    ctx, principal = call.ctx, call.who
    professional = principal.role in ("clinician", "source")
    relations = ctx.store.relations(patient) if professional else []
    blocks = ctx.store.active_blocks(patient) if professional else []
    decision = call.rule(principal, patient, relations, blocks, _override(call), utcnow(),
                         proxies_for(ctx, principal, patient))
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden" if decision.status == 403 else "invalid",
                       patient=patient)
    return decision


def _shown(call: Call, row: dict[str, Any], decided: set[str] | None) -> bool:
    """Whether the citizen sees a triage suggestion: only once the GP has decided, unless the server says so."""
    if call.who.role != "citizen" or row["kind"] != "suggestion" or call.ctx.settings.citizen_sees_suggestion:
        return True
    return decided is not None and row["id"] in decided


def _search(call: Call, resource_type: str) -> Response:
    ctx, principal = call.ctx, call.who
    patient = _patient_param(call)
    if patient is None:
        raise ApiError(400, "patient-required", code="required")
    paging = Paging.of(call, ctx.settings.page_size, ctx.settings.max_page_size)
    decision = _read_decision(call, patient)
    rows = [] if decision.nothing else ctx.store.clinical(patient, resource_type)
    decided = {r["derived_from"] for r in rows if r["kind"] == "decision"}
    rows = [r for r in rows if _shown(call, r, decided)]
    _record(ctx, AuditRecord(f"search-{resource_type}", principal, patient_cpr=patient,
                             purpose="PATRQT" if principal.role == "citizen" else "TREAT", override=decision.override,
                             minlog=decision.minlog, reason="blocked" if decision.nothing else None,
                             detail={"returned": len(rows), "ids": [r["id"] for r in rows][:50]},
                             on_behalf=decision.acting_for))
    # The same paging and order as every search route (app.Paging): newest first unless _sort=date.
    if not paging.newest_first:
        rows.reverse()
    page = rows[paging.offset:paging.offset + paging.count]
    return fhir({"resourceType": "Bundle", "type": "searchset", "total": len(rows),
                 "link": paging.links(call, f"/fhir/{resource_type}", len(rows)),
                 "entry": [{"fullUrl": f"{base_url(call.request, ctx.settings)}/fhir/{resource_type}/{r['id']}",
                            "resource": r["resource"], "search": {"mode": "match"}} for r in page]})


def _read(call: Call, resource_type: str) -> Response:
    ctx, principal = call.ctx, call.who
    rid = inputs.resource_id(call.request.path_params["id"], "unknown-resource")
    row = ctx.store.clinical_one(resource_type, rid)
    not_here = ApiError(404, "unknown-resource", code="not-found", type=resource_type, id=rid)
    if row is None:
        raise not_here
    patient = row["patient_cpr"]
    try:
        decision = _read_decision(call, patient)
    except ApiError as exc:
        if exc.key == "citizen-other-patient":  # whether it exists is itself health data
            raise not_here from None
        raise
    decided = {r["derived_from"] for r in ctx.store.clinical(patient, resource_type, "decision")} \
        if row["kind"] == "suggestion" else None
    if decision.nothing or not _shown(call, row, decided):
        _record(ctx, AuditRecord(f"read-{resource_type}", principal, outcome="4", patient_cpr=patient,
                                 reason="blocked" if decision.nothing else "not-yet-decided", detail={"id": rid}))
        raise not_here
    _record(ctx, AuditRecord(f"read-{resource_type}", principal, patient_cpr=patient,
                             purpose="PATRQT" if principal.role == "citizen" else "TREAT",
                             override=decision.override, minlog=decision.minlog, detail={"id": rid},
                             on_behalf=decision.acting_for))
    return fhir(row["resource"], headers={"ETag": 'W/"1"'})  # stored once, never changed: version 1


async def search_responses(call: Call) -> Response:
    return await run_in_threadpool(_search, call, "QuestionnaireResponse")


async def read_response(call: Call) -> Response:
    return await run_in_threadpool(_read, call, "QuestionnaireResponse")


async def search_observations(call: Call) -> Response:
    return await run_in_threadpool(_search, call, "Observation")


async def read_observation(call: Call) -> Response:
    return await run_in_threadpool(_read, call, "Observation")


async def search_impressions(call: Call) -> Response:
    return await run_in_threadpool(_search, call, "ClinicalImpression")


async def read_impression(call: Call) -> Response:
    return await run_in_threadpool(_read, call, "ClinicalImpression")


# -- triage --------------------------------------------------------------------------------------------------

async def triage_route(call: Call) -> Response:
    """$triage: the body is the GP's assessment (a QuestionnaireResponse); the server takes the patient's latest
    stored own response, stores the assessment and the suggestion, and answers the suggestion."""
    assessment, patient = await run_in_threadpool(_response_body, call)

    def work() -> Response:
        ctx, principal = call.ctx, call.who
        _ask_submit(call, patient)
        stored = ctx.store.clinical(patient, "QuestionnaireResponse", "patient-response")
        if not stored:
            raise ApiError(422, "no-patient-response", code="business-rule", patient=patient)
        assessment["id"] = str(uuid.uuid4())
        suggestion = triage(stored[0]["resource"], assessment, content_of(ctx))
        if not suggestion.valid or suggestion.resource is None:
            _record(ctx, AuditRecord("refused", principal, outcome="4", patient_cpr=patient, reason="triage-refused",
                                     detail={"path": "/fhir/ClinicalImpression/$triage", "status": 422}))
            return fhir(_outcome(suggestion.findings, call.lang), 422)
        impression = suggestion.resource
        impression["id"] = str(uuid.uuid4())
        assert suggestion.assessment is not None
        rows = [_row(assessment, "assessment", patient, principal.actor, suggestion.assessment.questionnaire),
                _row(impression, "suggestion", patient, principal.actor, None, stored[0]["id"])]
        rec = AuditRecord("triage", principal, patient_cpr=patient, purpose="TREAT",
                          detail={"suggestion": impression["id"], "response": stored[0]["id"],
                                  "assessment": assessment["id"], "colour": suggestion.colour})
        ctx.store.put_clinical(rows, rec)
        return _created(call, "ClinicalImpression", impression["id"])

    return await run_in_threadpool(work)


def _created(call: Call, resource_type: str, rid: str) -> Response:
    """201 with the resource as a read gives it (meta.versionId, lastUpdated), its Location and ETag."""
    row = call.ctx.store.clinical_one(resource_type, rid)
    assert row is not None  # stored in this request's transaction
    url = base_url(call.request, call.ctx.settings)
    return fhir(row["resource"], 201, {"Location": f"{url}/fhir/{resource_type}/{rid}", "ETag": 'W/"1"'})


async def decide_route(call: Call) -> Response:
    """$decide: {"suggestion": id, "colour": red|yellow|green, "reason": text (required when changed)}, or the
    same as a FHIR Parameters resource (JSON or XML)."""
    body = await run_in_threadpool(_decision_body, call)
    sid, colour, reason = body.get("suggestion"), body.get("colour"), body.get("reason")
    if not isinstance(sid, str) or not isinstance(colour, str) or not (reason is None or isinstance(reason, str)):
        raise ApiError(400, "decision-body", code="invalid")
    sid = inputs.resource_id(sid, "unknown-resource")

    def work() -> Response:
        ctx, principal = call.ctx, call.who
        row = ctx.store.clinical_one("ClinicalImpression", sid)
        if row is None or row["kind"] != "suggestion":
            raise ApiError(404, "unknown-resource", code="not-found", type="ClinicalImpression", id=sid)
        patient = row["patient_cpr"]
        _ask_submit(call, patient)
        made = decide(row["resource"], colour, reason=reason)
        if not made.valid or made.resource is None:
            return fhir(_outcome(made.findings, call.lang), 422)
        resource = made.resource
        resource["id"] = str(uuid.uuid4())
        rec = AuditRecord("triage-decision", principal, patient_cpr=patient, purpose="TREAT",
                          detail={"suggestion": sid, "decision": resource["id"], "colour": colour,
                                  "suggested": overall_colour(row["resource"])})
        ctx.store.put_clinical([_row(resource, "decision", patient, principal.actor, None, sid)], rec)
        return _created(call, "ClinicalImpression", resource["id"])

    return await run_in_threadpool(work)


def _decision_body(call: Call) -> dict[str, Any]:
    """$decide's body as {"suggestion", "colour", "reason"}: from the plain JSON object, or from Parameters (a
    parameter per name, its value as valueString, valueId or valueCode)."""
    body = inputs.json_object(formats.body_json(call.body, call.request.headers.get("content-type"),
                                                call.ctx.validator.limits, call.lang), call.ctx.settings)
    if body.get("resourceType") != "Parameters":
        return body
    out: dict[str, Any] = {}
    parameters = body.get("parameter")
    for p in parameters if isinstance(parameters, list) else [parameters]:
        if not isinstance(p, dict) or p.get("name") not in ("suggestion", "colour", "reason"):
            raise ApiError(400, "decision-body", code="invalid")
        values = [p[k] for k in ("valueString", "valueId", "valueCode") if k in p]
        if len(values) != 1 or p["name"] in out:
            raise ApiError(400, "decision-body", code="invalid")
        out[p["name"]] = values[0]
    return out


# The clinical searches' parameters (paging as on every search route: app.Paging).
CLINICAL_SEARCH = (("patient.identifier", "token"), ("patient", "reference"), *PAGING)

# Joined to app.ROUTES (at its end). Responses take the document limit: a long questionnaire's answers exceed the
# small JSON bodies' 64 KiB no sooner than a document would, and score() bounds the work by the Questionnaire.
ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", "/fhir/QuestionnaireResponse", submit_response, policy.may_submit_response, body="document",
              resource="QuestionnaireResponse", interaction="create"),
    RouteSpec("GET", "/fhir/QuestionnaireResponse", search_responses, policy.may_read_clinical,
              resource="QuestionnaireResponse", interaction="search-type", search=CLINICAL_SEARCH),
    RouteSpec("GET", "/fhir/QuestionnaireResponse/{id}", read_response, policy.may_read_clinical,
              resource="QuestionnaireResponse", interaction="read"),
    RouteSpec("GET", "/fhir/Observation", search_observations, policy.may_read_clinical,
              resource="Observation", interaction="search-type", search=CLINICAL_SEARCH),
    RouteSpec("GET", "/fhir/Observation/{id}", read_observation, policy.may_read_clinical,
              resource="Observation", interaction="read"),
    RouteSpec("POST", "/fhir/ClinicalImpression/$triage", triage_route, policy.may_decide_triage, body="document",
              resource="ClinicalImpression", interaction="$triage"),
    RouteSpec("POST", "/fhir/ClinicalImpression/$decide", decide_route, policy.may_decide_triage, body="json",
              resource="ClinicalImpression", interaction="$decide"),
    RouteSpec("GET", "/fhir/ClinicalImpression", search_impressions, policy.may_read_clinical,
              resource="ClinicalImpression", interaction="search-type", search=CLINICAL_SEARCH),
    RouteSpec("GET", "/fhir/ClinicalImpression/{id}", read_impression, policy.may_read_clinical,
              resource="ClinicalImpression", interaction="read"),
)
