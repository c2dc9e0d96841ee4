"""Completeness and consistency of a register against GDPR Arts 6, 9, 26, 28, 30, 35 and 36: findings, one small
function per check, in the validators' `Finding` shape (severity, stable code, JSON Pointer location, message in
Danish and English from the message catalogue).

The content checks read only the register and the date (`--today`); the sign-off checks read the register's state
in the store (`SignOffState`). Codes are stable once released; `CODES` is their single list (docs/dpia.md shows it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, NamedTuple

from kroniker.dpia import model, reading
from kroniker.dpia.model import CLAUSES, CONTROLLER_ROLES, DESCRIPTION, NECESSITY, PROCESSOR_ROLES, TERMS, THREATS
from kroniker.validators.findings import Finding, Severity
from kroniker.validators.findings import finding as make_finding

E, W = Severity.ERROR, Severity.WARNING
Path = tuple[str | int, ...]


class Rule(NamedTuple):
    severity: Severity
    article: str  # what demands it, for people and for JSON output


CODES: dict[str, Rule] = {
    # reading a file (import, check --file, init --template, adopt --delta): refused before anything is written
    **{code: Rule(severity, "kroniker register file") for code, severity in reading.CODES.items()},
    # structure and references
    "DPIA-SCHEMA": Rule(E, "kroniker register schema"),
    "DPIA-ID-DUPLICATE": Rule(E, "kroniker register schema"),
    "DPIA-REF-UNKNOWN": Rule(E, "kroniker register schema"),
    "DPIA-REF-RETIRED": Rule(W, "kroniker register schema"),
    "DPIA-PLACEHOLDER": Rule(E, "GDPR Art. 30(1)(a), 30(2)(a)"),
    "DPIA-HASH-MISMATCH": Rule(E, "GDPR Art. 5(2)"),
    # Art. 30(1): the controller's record
    "DPIA-30-1-A-CONTROLLER": Rule(E, "GDPR Art. 30(1)(a)"),
    "DPIA-30-1-A-DPO": Rule(W, "GDPR Art. 30(1)(a)"),
    "DPIA-30-1-B-PURPOSES": Rule(E, "GDPR Art. 30(1)(b)"),
    "DPIA-30-1-C-SUBJECTS": Rule(E, "GDPR Art. 30(1)(c)"),
    "DPIA-30-1-C-DATA": Rule(E, "GDPR Art. 30(1)(c)"),
    "DPIA-30-1-D-RECIPIENTS": Rule(E, "GDPR Art. 30(1)(d)"),
    "DPIA-30-1-E-TRANSFERS": Rule(E, "GDPR Art. 30(1)(e)"),
    "DPIA-30-1-E-SAFEGUARD": Rule(E, "GDPR Art. 30(1)(e), Chapter V"),
    "DPIA-30-1-F-RETENTION": Rule(W, "GDPR Art. 30(1)(f)"),
    "DPIA-30-1-G-SECURITY": Rule(W, "GDPR Art. 30(1)(g)"),
    # Arts 6 and 9: the legal basis
    "DPIA-6-BASIS": Rule(E, "GDPR Art. 6(1)"),
    "DPIA-9-BASIS": Rule(E, "GDPR Art. 9(2)"),
    "DPIA-9-NATIONAL-LAW": Rule(E, "GDPR Art. 9(2)(h), 9(4); databeskyttelsesloven § 7"),
    "DPIA-9-3-SECRECY": Rule(E, "GDPR Art. 9(3)"),
    # Art. 30(2): the processor's record
    "DPIA-30-2-RECORD": Rule(E, "GDPR Art. 30(2)"),
    "DPIA-30-2-A-PROCESSOR": Rule(E, "GDPR Art. 30(2)(a)"),
    "DPIA-30-2-A-CONTROLLERS": Rule(E, "GDPR Art. 30(2)(a)"),
    "DPIA-30-2-B-CATEGORIES": Rule(E, "GDPR Art. 30(2)(b)"),
    "DPIA-30-2-C-TRANSFERS": Rule(E, "GDPR Art. 30(2)(c)"),
    "DPIA-30-2-D-SECURITY": Rule(W, "GDPR Art. 30(2)(d)"),
    # Arts 26 and 28: roles and agreements
    "DPIA-ROLE-ACTS-FOR": Rule(E, "GDPR Art. 28(2), 28(4)"),
    "DPIA-28-10-ROLE": Rule(W, "GDPR Art. 28(10)"),
    "DPIA-26-ARRANGEMENT": Rule(E, "GDPR Art. 26(1)"),
    "DPIA-28-3-AGREEMENT-MISSING": Rule(E, "GDPR Art. 28(3)"),
    "DPIA-28-4-AGREEMENT-MISSING": Rule(E, "GDPR Art. 28(4)"),
    "DPIA-28-3-TERMS": Rule(E, "GDPR Art. 28(3)"),
    **{f"DPIA-28-3-{c.upper()}": Rule(E, f"GDPR Art. 28(3)({c})") for c in CLAUSES},
    "DPIA-28-9-WRITING": Rule(E, "GDPR Art. 28(9)"),
    "DPIA-28-1-AUDIT": Rule(W, "GDPR Art. 28(1), 28(3)(h)"),
    "DPIA-28-1-AUDIT-OVERDUE": Rule(W, "GDPR Art. 28(1), 28(3)(h)"),
    "DPIA-28-2-SUBPROCESSOR-UNAPPROVED": Rule(E, "GDPR Art. 28(2)"),
    # Art. 35: the DPIA
    "DPIA-35-MISSING": Rule(E, "GDPR Art. 35(1)"),
    "DPIA-35-1-SCOPE": Rule(W, "GDPR Art. 35(1)"),
    "DPIA-35-1-SCREENING": Rule(W, "GDPR Art. 35(1), 35(3), 35(4)"),
    "DPIA-35-7-A-DESCRIPTION": Rule(E, "GDPR Art. 35(7)(a)"),
    "DPIA-35-7-B-NECESSITY": Rule(E, "GDPR Art. 35(7)(b)"),
    "DPIA-35-7-C-RISKS": Rule(E, "GDPR Art. 35(7)(c)"),
    "DPIA-35-7-C-RISK-INCOMPLETE": Rule(E, "GDPR Art. 35(7)(c)"),
    "DPIA-35-7-C-RISK-ESTIMATE": Rule(E, "GDPR Art. 35(7)(c)"),
    "DPIA-35-7-C-THREATS": Rule(W, "GDPR Art. 35(7)(c); WP248 Annex 2"),
    "DPIA-RISK-RESIDUAL-ABOVE": Rule(W, "GDPR Art. 35(7)(c)"),
    "DPIA-35-7-D-MEASURES": Rule(E, "GDPR Art. 35(7)(d)"),
    "DPIA-35-7-D-RISK-UNTREATED": Rule(E, "GDPR Art. 35(7)(d)"),
    "DPIA-MEASURE-INCOMPLETE": Rule(W, "GDPR Art. 35(7)(d), 24(1)"),
    "DPIA-MEASURE-OVERDUE": Rule(W, "GDPR Art. 35(7)(d), 24(1)"),
    "DPIA-35-8-CODES": Rule(W, "GDPR Art. 35(8)"),
    "DPIA-35-9-VIEWS": Rule(W, "GDPR Art. 35(9)"),
    "DPIA-35-11-REVIEW": Rule(E, "GDPR Art. 35(11)"),
    "DPIA-35-11-INTERVAL": Rule(W, "GDPR Art. 35(11); WP248"),
    "DPIA-35-11-TRIGGERS": Rule(W, "GDPR Art. 35(11)"),
    "DPIA-REVIEW-OVERDUE": Rule(E, "GDPR Art. 35(11)"),
    # Art. 36: prior consultation
    "DPIA-36-DECISION": Rule(W, "GDPR Art. 36(1)"),
    "DPIA-36-HIGH-RESIDUAL": Rule(E, "GDPR Art. 36(1)"),
    "DPIA-36-NOT-CONSULTED": Rule(W, "GDPR Art. 36(1)"),
    # sign-off
    "DPIA-35-2-DPO-ADVICE": Rule(W, "GDPR Art. 35(2)"),
    "DPIA-SIGNOFF-MISSING": Rule(W, "GDPR Art. 24(1), 5(2)"),
    "DPIA-SIGNOFF-STALE": Rule(E, "GDPR Art. 24(1), 5(2)"),
    "DPIA-SIGNOFF-REJECTED": Rule(E, "GDPR Art. 24(1)"),
    "DPIA-TEMPLATE-CHANGED": Rule(W, "GDPR Art. 24(1), 35(11)"),
}

# Points of Art. 9(2) that rest on Union or member-state law, so a national provision must be named.
NEEDS_NATIONAL_LAW = {"9(2)(b)", "9(2)(g)", "9(2)(h)", "9(2)(i)", "9(2)(j)"}
THREE_YEARS_DAYS = 3 * 366


def finding(code: str, path: Path, **params: Any) -> Finding:
    return make_finding(CODES[code].severity, code, model.pointer(path) or "/", path, params=params)


# -- what the store knows about sign-offs --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SignOff:
    role: str  # dpo | controller
    name: str
    decision: str  # approve | approve-with-conditions | reject
    revision: str  # the hash of the revision signed
    revision_number: int
    time: str
    statement: str | None = None
    despite_errors: bool = False
    template_revision: int | None = None  # for a clinic: the template revision its register was built on


@dataclass(frozen=True, slots=True)
class SignOffState:
    """The register's current revision and its sign-offs, oldest first; for a clinic also the template revision."""

    revision: str
    revision_number: int
    sign_offs: Sequence[SignOff] = ()
    template_revision: int | None = None
    template_changes: int = 0  # for a clinic: changes in the template since its last controller sign-off
    dpo_on_template: bool = False  # for a clinic: the DPO signed the template revision it is built on


@dataclass(frozen=True, slots=True)
class Context:
    today: date
    state: SignOffState | None = None
    schema_problems: Sequence[model.SchemaProblem] = field(default_factory=tuple)


Check = Callable[[Mapping[str, Any], Context], Iterable[Finding]]


def check(document: Mapping[str, Any], today: date, state: SignOffState | None = None,
          schema_problems: Sequence[model.SchemaProblem] | None = None) -> list[Finding]:
    """Every finding for a register, worst first. Schema problems are checked here unless the caller already did."""
    problems = model.schema_problems(document) if schema_problems is None else schema_problems
    ctx = Context(today, state, tuple(problems))
    findings = [f for check_ in CHECKS for f in check_(document, ctx)]
    return sorted(findings, key=lambda f: (-int(f.severity), f.location, f.code))


# -- helpers -------------------------------------------------------------------------------------------------

def _kind(doc: Mapping[str, Any]) -> str:
    return str(doc.get("kind", "register"))


def _is_template(doc: Mapping[str, Any]) -> bool:
    return _kind(doc) == "template"


def _activities(doc: Mapping[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for i, activity in model.listed(doc, "activities"):
        yield ("activities", i), activity


def _roles(activity: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    roles = activity.get("roles")
    return [(i, r) for i, r in enumerate(roles) if isinstance(r, dict)] if isinstance(roles, list) else []


def _with_role(activity: Mapping[str, Any], *roles: str) -> list[str]:
    return [r["organisation"] for _, r in _roles(activity) if r.get("role") in roles and "organisation" in r]


def _org_name(doc: Mapping[str, Any], org_id: str) -> str:
    org = model.by_id(doc, "organisations").get(org_id)
    return str(org.get("name", org_id)) if org else org_id


def _has_contact(org: Mapping[str, Any]) -> bool:
    contact = org.get("contact")
    return isinstance(contact, dict) and any(contact.get(k) for k in ("address", "email", "phone", "web"))


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _covers(item: Mapping[str, Any], activity_id: str) -> bool:
    """An agreement or approval covers an activity it names; one that names none covers them all."""
    acts = item.get("activities")
    return not acts or activity_id in acts


def _record(activity: Mapping[str, Any]) -> dict[str, Any]:
    return _mapping(activity.get("record"))


def _mapping(value: Any) -> dict[str, Any]:
    """A JSON object as read, or an empty one for anything else (the checks then report what is missing)."""
    return value if isinstance(value, dict) else {}


def _special(activity: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for _, c in model.listed(_record(activity), "data_categories") if c.get("special", "none") != "none"]


# -- structure and references --------------------------------------------------------------------------------

def schema_shape(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    for problem in ctx.schema_problems:
        yield make_finding(E, "DPIA-SCHEMA", problem.pointer or "/", model.parse_pointer(problem.pointer),
                           params={"detail": problem.message})


def duplicate_ids(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """An id twice in one list (a register stored before import refused them, or a file checked as it is)."""
    yield from model.duplicate_id_findings(doc)


def references(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """Every id that points at an organisation, activity or measure names one the register has, and not a retired
    one where the pointing item is itself in force."""
    targets = {kind: _ids_with_status(doc, *where) for kind, where in
               (("organisation", ("organisations",)), ("activity", ("activities",)), ("measure", ("dpia", "measures")))}
    for path, kind, ref in _references(doc):
        known = targets[kind]
        if ref not in known:
            yield finding("DPIA-REF-UNKNOWN", path, ref=ref, kind=f"@dpia-kind-{kind}")
        elif not known[ref]:
            yield finding("DPIA-REF-RETIRED", path, ref=ref, kind=f"@dpia-kind-{kind}")


def _ids_with_status(doc: Mapping[str, Any], *where: str) -> dict[str, bool]:
    node: Any = doc
    for key in where:
        node = node.get(key) if isinstance(node, dict) else None
    return {item["id"]: model.active(item) for item in node or [] if isinstance(item, dict) and "id" in item}


def _references(doc: Mapping[str, Any]) -> Iterator[tuple[Path, str, str]]:
    """(where, kind, id) for every reference in the active parts of the register."""
    def refs(item: Mapping[str, Any], base: Path, fields: Iterable[tuple[str, str]]) -> Iterator[tuple[Path, str, str]]:
        for key, kind in fields:
            value = item.get(key)
            if isinstance(value, str):
                yield (*base, key), kind, value
            elif isinstance(value, list):
                yield from (((*base, key, i), kind, v) for i, v in enumerate(value) if isinstance(v, str))

    if isinstance(doc.get("dpo"), dict):
        yield from refs(doc["dpo"], ("dpo",), [("organisation", "organisation")])
    for path, activity in _activities(doc):
        for i, role in _roles(activity):
            yield from refs(role, (*path, "roles", i), [("organisation", "organisation"), ("acts_for", "organisation")])
        record = _record(activity)
        if isinstance(record.get("security"), dict):
            yield from refs(record["security"], (*path, "record", "security"), [("measures", "measure")])
        for i, prec in enumerate(activity.get("processor_records") or []):
            if isinstance(prec, dict):
                yield from refs(prec, (*path, "processor_records", i),
                                [("processor", "organisation"), ("controllers", "organisation")])
                if isinstance(prec.get("security"), dict):
                    yield from refs(prec["security"], (*path, "processor_records", i, "security"),
                                    [("measures", "measure")])
    parties = [("controller", "organisation"), ("processor", "organisation"), ("sub_processor", "organisation"),
               ("controllers", "organisation"), ("activities", "activity")]
    for i, agreement in model.listed(doc, "agreements"):
        yield from refs(agreement, ("agreements", i), parties)
    for i, approval in model.listed(doc, "sub_processor_approvals"):
        yield from refs(approval, ("sub_processor_approvals", i), parties)
    dpia = doc.get("dpia")
    if isinstance(dpia, dict):
        if isinstance(dpia.get("scope"), dict):
            yield from refs(dpia["scope"], ("dpia", "scope"), [("activities", "activity")])
        for i, risk in model.listed(dpia, "risks"):
            yield from refs(risk, ("dpia", "risks", i), [("activities", "activity"), ("measures", "measure")])
        for i, measure in model.listed(dpia, "measures"):
            yield from refs(measure, ("dpia", "measures", i), [("owner", "organisation")])
        description = dpia.get("description")
        if isinstance(description, dict):
            for i, asset in enumerate(description.get("assets") or []):
                if isinstance(asset, dict):
                    yield from refs(asset, ("dpia", "description", "assets", i), [("organisation", "organisation")])


def placeholders(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """A template names some parties by function; a clinic's register must name the real ones."""
    if _is_template(doc):
        return
    used = {org for _, activity in _activities(doc) for org in _with_role(activity, *model.ROLES)}
    for i, org in model.listed(doc, "organisations"):
        if org.get("placeholder") and org.get("id") in used:
            yield finding("DPIA-PLACEHOLDER", ("organisations", i), org=org.get("name", org.get("id")))


# -- Art. 30(1) ----------------------------------------------------------------------------------------------

def controller_identity(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    orgs = model.by_id(doc, "organisations")
    for path, activity in _activities(doc):
        controllers = [(i, r) for i, r in _roles(activity) if r.get("role") in CONTROLLER_ROLES]
        if not controllers:
            yield finding("DPIA-30-1-A-CONTROLLER", (*path, "roles"), activity=activity["id"])
            continue
        for i, role in controllers:
            org = orgs.get(role.get("organisation", ""))
            if org is None or (org.get("placeholder") and _is_template(doc)):
                continue  # an unknown id is DPIA-REF-UNKNOWN; a template's placeholder is named on adoption
            if _empty(org.get("name")) or not _has_contact(org):
                yield replace(finding("DPIA-30-1-A-CONTROLLER", (*path, "roles", i), activity=activity["id"],
                                      org=org.get("name", org["id"])), message_key="DPIA-30-1-A-CONTROLLER-CONTACT")


def register_dpo(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpo = doc.get("dpo")
    if not isinstance(dpo, dict) or _empty(dpo.get("name")) or not (dpo.get("email") or dpo.get("phone")):
        yield finding("DPIA-30-1-A-DPO", ("dpo",))


def record_lists(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """Purposes, data subjects, data categories and recipients: each stated, not empty."""
    for path, activity in _activities(doc):
        record = _record(activity)
        for key, code in (("purposes", "DPIA-30-1-B-PURPOSES"), ("data_subjects", "DPIA-30-1-C-SUBJECTS"),
                          ("data_categories", "DPIA-30-1-C-DATA"), ("recipients", "DPIA-30-1-D-RECIPIENTS")):
            if _empty(record.get(key)):
                yield finding(code, (*path, "record", key), activity=activity["id"])


def record_transfers(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    for path, activity in _activities(doc):
        record = _record(activity)
        if "transfers" not in record:
            yield finding("DPIA-30-1-E-TRANSFERS", (*path, "record", "transfers"), activity=activity["id"])
            continue
        for i, transfer in enumerate(record["transfers"] or []):
            if isinstance(transfer, dict) and _empty(transfer.get("safeguard")):
                yield finding("DPIA-30-1-E-SAFEGUARD", (*path, "record", "transfers", i), activity=activity["id"],
                              country=transfer.get("country", "?"))


def record_retention(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    for path, activity in _activities(doc):
        for i, category in model.listed(_record(activity), "data_categories"):
            if _empty(category.get("retention")):
                yield finding("DPIA-30-1-F-RETENTION", (*path, "record", "data_categories", i, "retention"),
                              activity=activity["id"], category=category.get("name", category.get("id")))


def record_security(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    for path, activity in _activities(doc):
        if not _security_stated(_record(activity).get("security")):
            yield finding("DPIA-30-1-G-SECURITY", (*path, "record", "security"), activity=activity["id"])


def _security_stated(security: Any) -> bool:
    return isinstance(security, dict) and not (_empty(security.get("description")) and _empty(security.get("measures")))


# -- Arts 6 and 9 --------------------------------------------------------------------------------------------

def legal_basis(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    for path, activity in _activities(doc):
        basis = _mapping(_record(activity).get("legal_basis"))
        where = (*path, "record", "legal_basis")
        if _empty(basis.get("art6")):
            yield finding("DPIA-6-BASIS", (*where, "art6"), activity=activity["id"])
        special = _special(activity)
        if not special:
            continue
        names = ", ".join(str(c.get("name", c.get("id"))) for c in special)
        art9 = {str(b.get("ref")) for b in basis.get("art9") or [] if isinstance(b, dict) and b.get("ref")}
        if not art9:
            yield finding("DPIA-9-BASIS", (*where, "art9"), activity=activity["id"], categories=names)
            continue
        if art9 & NEEDS_NATIONAL_LAW and _empty(basis.get("national")):
            yield finding("DPIA-9-NATIONAL-LAW", (*where, "national"), activity=activity["id"],
                          basis=", ".join(sorted(art9 & NEEDS_NATIONAL_LAW)))
        if "9(2)(h)" in art9 and _empty(basis.get("art9_3")):
            yield finding("DPIA-9-3-SECRECY", (*where, "art9_3"), activity=activity["id"])


# -- Art. 30(2) ----------------------------------------------------------------------------------------------

def processor_records(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    orgs = model.by_id(doc, "organisations")
    for path, activity in _activities(doc):
        records = {r.get("processor"): (i, r) for i, r in enumerate(activity.get("processor_records") or [])
                   if isinstance(r, dict)}
        for i, role in _roles(activity):
            if role.get("role") not in PROCESSOR_ROLES or "organisation" not in role:
                continue
            org_id = role["organisation"]
            if org_id not in records:
                yield finding("DPIA-30-2-RECORD", (*path, "roles", i), activity=activity["id"],
                              org=_org_name(doc, org_id))
                continue
            j, record = records[org_id]
            yield from _processor_record(doc, ctx, (*path, "processor_records", j), activity["id"], record,
                                         orgs.get(org_id))


def _processor_record(doc: Mapping[str, Any], ctx: Context, path: Path, activity: str, record: Mapping[str, Any],
                      org: Mapping[str, Any] | None) -> Iterator[Finding]:
    name = org.get("name", org.get("id")) if org else record.get("processor")
    if org and not (org.get("placeholder") and _is_template(doc)) and not _has_contact(org):
        yield finding("DPIA-30-2-A-PROCESSOR", (*path, "processor"), activity=activity, org=name)
    if _empty(record.get("controllers")):
        yield finding("DPIA-30-2-A-CONTROLLERS", (*path, "controllers"), activity=activity, org=name)
    if _empty(record.get("categories")):
        yield finding("DPIA-30-2-B-CATEGORIES", (*path, "categories"), activity=activity, org=name)
    if "transfers" not in record:
        yield finding("DPIA-30-2-C-TRANSFERS", (*path, "transfers"), activity=activity, org=name)
    if not _security_stated(record.get("security")):
        yield finding("DPIA-30-2-D-SECURITY", (*path, "security"), activity=activity, org=name)


# -- Arts 26 and 28 ------------------------------------------------------------------------------------------

def _principal(activity: Mapping[str, Any], role: Mapping[str, Any]) -> list[str]:
    """Whom a processor acts for: its acts_for, else the activity's controllers."""
    if role.get("acts_for"):
        return [role["acts_for"]]
    return _with_role(activity, *CONTROLLER_ROLES)


def role_chain(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """A sub-processor names the processor that engaged it; a processor acts for a controller of the activity."""
    for path, activity in _activities(doc):
        processors = set(_with_role(activity, *PROCESSOR_ROLES))
        controllers = set(_with_role(activity, *CONTROLLER_ROLES))
        for i, role in _roles(activity):
            kind, acts_for = role.get("role"), role.get("acts_for")
            bad = (kind == "sub-processor" and acts_for not in processors) or \
                  (kind == "processor" and acts_for is not None and acts_for not in controllers)
            if bad:
                yield finding("DPIA-ROLE-ACTS-FOR", (*path, "roles", i), activity=activity["id"],
                              org=_org_name(doc, role.get("organisation", "?")), role=f"@dpia-role-{kind}",
                              acts_for=acts_for or "—")
        for org in sorted(controllers & processors):
            yield finding("DPIA-28-10-ROLE", (*path, "roles"), activity=activity["id"], org=_org_name(doc, org))


def joint_arrangement(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    agreements = [a for _, a in model.listed(doc, "agreements") if a.get("kind") == "joint-controller"]
    for path, activity in _activities(doc):
        joint = set(_with_role(activity, "joint-controller"))
        arranged = any(joint <= set(a.get("controllers") or []) and _covers(a, activity["id"]) for a in agreements)
        if joint and not arranged:
            yield finding("DPIA-26-ARRANGEMENT", (*path, "roles"), activity=activity["id"],
                          orgs=", ".join(_org_name(doc, o) for o in sorted(joint)))


def agreement_present(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """Every processor has a data-processing agreement with whom it acts for, every sub-processor a sub-processing
    agreement with its processor, covering the activity."""
    agreements = [a for _, a in model.listed(doc, "agreements")]
    for path, activity in _activities(doc):
        for i, role in _roles(activity):
            org = role.get("organisation")
            if role.get("role") == "processor":
                for principal in _principal(activity, role):
                    if not any(a.get("kind") == "data-processing" and a.get("controller") == principal
                               and a.get("processor") == org and _covers(a, activity["id"]) for a in agreements):
                        yield finding("DPIA-28-3-AGREEMENT-MISSING", (*path, "roles", i), activity=activity["id"],
                                      org=_org_name(doc, org or "?"), principal=_org_name(doc, principal))
            elif role.get("role") == "sub-processor" and role.get("acts_for") and not any(
                    a.get("kind") == "sub-processing" and a.get("processor") == role["acts_for"]
                    and a.get("sub_processor") == org and _covers(a, activity["id"]) for a in agreements):
                yield finding("DPIA-28-4-AGREEMENT-MISSING", (*path, "roles", i), activity=activity["id"],
                              org=_org_name(doc, org or "?"), principal=_org_name(doc, role["acts_for"]))


def agreement_content(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """The Art. 28(3) terms and clauses, in writing (Art. 28(9)), and the processor verified (Art. 28(1))."""
    for i, agreement in model.listed(doc, "agreements"):
        if agreement.get("kind") not in ("data-processing", "sub-processing"):
            continue
        path: Path = ("agreements", i)
        params = {"agreement": agreement.get("id", "?"), "org": _org_name(doc, agreement.get("processor", "?")),
                  "sub": _org_name(doc, agreement.get("sub_processor", "?"))}
        terms = _mapping(agreement.get("terms"))
        for term in TERMS:
            if _empty(terms.get(term)):
                yield finding("DPIA-28-3-TERMS", (*path, "terms", term), term=f"@dpia-term-{term}", **params)
        clauses = _mapping(agreement.get("clauses"))
        for clause in CLAUSES:
            if clauses.get(clause) is not True:
                yield finding(f"DPIA-28-3-{clause.upper()}", (*path, "clauses", clause), **params)
        yield from _in_writing(doc, path, agreement, params)
        if agreement.get("kind") == "data-processing":
            yield from _verified(ctx, path, agreement, params)


def _in_writing(doc: Mapping[str, Any], path: Path, agreement: Mapping[str, Any],
                params: dict[str, Any]) -> Iterator[Finding]:
    status = agreement.get("status")
    if status == "standard-terms" and _is_template(doc):
        return  # a template's common terms; each clinic records its own signature
    if status != "signed" or not agreement.get("signed"):
        yield finding("DPIA-28-9-WRITING", (*path, "signed" if status == "signed" else "status"),
                      status=status or "—", **params)


def _verified(ctx: Context, path: Path, agreement: Mapping[str, Any], params: dict[str, Any]) -> Iterator[Finding]:
    audit = agreement.get("audit")
    due = _date(audit.get("next")) if isinstance(audit, dict) else None
    if not isinstance(audit, dict) or _empty(audit.get("evidence")) or due is None:
        yield finding("DPIA-28-1-AUDIT", (*path, "audit"), **params)
    elif due < ctx.today:
        yield finding("DPIA-28-1-AUDIT-OVERDUE", (*path, "audit", "next"), due=due.isoformat(), **params)


def sub_processor_approved(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """Art. 28(2): a sub-processor only with the controller's prior written authorisation."""
    approvals = [a for _, a in model.listed(doc, "sub_processor_approvals")]
    agreements = model.by_id(doc, "agreements")
    for path, activity in _activities(doc):
        roles = dict(_roles(activity))
        for i, role in roles.items():
            if role.get("role") != "sub-processor" or not role.get("acts_for"):
                continue
            processor = next((r for r in roles.values() if r.get("organisation") == role["acts_for"]
                              and r.get("role") in PROCESSOR_ROLES), None)
            controllers = _principal(activity, processor) if processor else []
            for controller in controllers:
                if not any(_approves(doc, a, agreements, controller, role["acts_for"], role.get("organisation"),
                                     activity["id"]) for a in approvals):
                    yield finding("DPIA-28-2-SUBPROCESSOR-UNAPPROVED", (*path, "roles", i), activity=activity["id"],
                                  org=_org_name(doc, role.get("organisation", "?")),
                                  processor=_org_name(doc, role["acts_for"]), controller=_org_name(doc, controller))


def _approves(doc: Mapping[str, Any], approval: Mapping[str, Any], agreements: Mapping[str, Mapping[str, Any]],
              controller: str, processor: str, sub: Any, activity: str) -> bool:
    parties = (approval.get("controller"), approval.get("processor"), approval.get("sub_processor"))
    if parties != (controller, processor, sub):
        return False
    if not _covers(approval, activity):
        return False
    if approval.get("approved"):
        return True
    # Approved in the annex of an agreement: as good as the agreement's signature.
    agreement = agreements.get(approval.get("agreement", ""))
    if agreement is None:
        return False
    return agreement.get("status") == "signed" or (agreement.get("status") == "standard-terms" and _is_template(doc))


# -- Art. 35 -------------------------------------------------------------------------------------------------

def _dpia(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    dpia = doc.get("dpia")
    return dpia if isinstance(dpia, dict) else None


def dpia_present(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    if _dpia(doc) is None:
        yield finding("DPIA-35-MISSING", ("dpia",))


def dpia_scope(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    scope = dpia.get("scope")
    if not isinstance(scope, dict) or _empty(scope.get("activities")) or _empty(scope.get("controllers")):
        yield finding("DPIA-35-1-SCOPE", ("dpia", "scope"), activity="—")
        return
    for path, activity in _activities(doc):
        if activity["id"] not in scope["activities"]:
            yield finding("DPIA-35-1-SCOPE", path, activity=activity["id"])
    screening = dpia.get("screening")
    if not isinstance(screening, dict) or _empty(screening.get("conclusion")):
        yield finding("DPIA-35-1-SCREENING", ("dpia", "screening"))


def dpia_description(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    yield from _items_stated(doc, "description", DESCRIPTION, "DPIA-35-7-A-DESCRIPTION", "dpia-description")


def dpia_necessity(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    yield from _items_stated(doc, "necessity", NECESSITY, "DPIA-35-7-B-NECESSITY", "dpia-necessity")


def _items_stated(doc: Mapping[str, Any], section: str, items: Sequence[str], code: str,
                  words: str) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    part = dpia.get(section)
    if not isinstance(part, dict):
        yield finding(code, ("dpia", section), item=f"@{words}-all")
        return
    for item in items:
        if _empty(part.get(item)):
            yield finding(code, ("dpia", section, item), item=f"@{words}-{item}")


def dpia_risks(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    risks = list(model.listed(dpia, "risks"))
    if not risks:
        yield finding("DPIA-35-7-C-RISKS", ("dpia", "risks"))
        return
    for i, risk in risks:
        path: Path = ("dpia", "risks", i)
        for item in ("threat", "sources", "impacts"):
            if _empty(risk.get(item)):
                yield finding("DPIA-35-7-C-RISK-INCOMPLETE", (*path, item), risk=risk.get("id", "?"),
                              item=f"@dpia-risk-{item}")
        for item in ("inherent", "residual"):
            if model.risk_level(risk.get(item)) is None:
                yield finding("DPIA-35-7-C-RISK-ESTIMATE", (*path, item), risk=risk.get("id", "?"),
                              item=f"@dpia-risk-{item}")
        inherent, residual = risk.get("inherent") or {}, risk.get("residual") or {}
        if any(residual.get(k, 0) > inherent.get(k, 5) for k in ("severity", "likelihood")):
            yield finding("DPIA-RISK-RESIDUAL-ABOVE", (*path, "residual"), risk=risk.get("id", "?"))
    covered = {risk.get("threat") for _, risk in risks}
    for threat in THREATS:
        if threat not in covered:
            yield finding("DPIA-35-7-C-THREATS", ("dpia", "risks"), threat=f"@dpia-threat-{threat}")


def dpia_measures(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    measures = list(model.listed(dpia, "measures"))
    if not measures:
        yield finding("DPIA-35-7-D-MEASURES", ("dpia", "measures"))
    for i, risk in model.listed(dpia, "risks"):
        if _empty(risk.get("measures")) and model.risk_level(risk.get("inherent")) not in (None, "low"):
            yield finding("DPIA-35-7-D-RISK-UNTREATED", ("dpia", "risks", i, "measures"), risk=risk.get("id", "?"),
                          level=f"@dpia-level-{model.risk_level(risk.get('inherent'))}")
    for i, measure in measures:
        path: Path = ("dpia", "measures", i)
        open_ = measure.get("status") in (None, "planned", "in-progress")
        for item in ("owner", "deadline") if open_ else ("owner",):
            if _empty(measure.get(item)):
                yield finding("DPIA-MEASURE-INCOMPLETE", (*path, item), measure=measure.get("id", "?"),
                              item=f"@dpia-measure-{item}")
        deadline = _date(measure.get("deadline"))
        if open_ and deadline is not None and deadline < ctx.today:
            yield finding("DPIA-MEASURE-OVERDUE", (*path, "deadline"), measure=measure.get("id", "?"),
                          title=measure.get("title", ""), deadline=deadline.isoformat(),
                          owner=_org_name(doc, measure.get("owner", "?")))


def dpia_codes_and_views(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    if _empty(dpia.get("codes_of_conduct")):
        yield finding("DPIA-35-8-CODES", ("dpia", "codes_of_conduct"))
    views = dpia.get("data_subject_views")
    stated = isinstance(views, dict) and (
        (views.get("sought") is True and not _empty(views.get("summary")))
        or (views.get("sought") is False and not _empty(views.get("reason"))))
    if not stated:
        yield finding("DPIA-35-9-VIEWS", ("dpia", "data_subject_views"))


def dpia_review(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    stated = dpia.get("review")
    review = _mapping(stated)
    due = _date(review.get("next"))
    if due is None:
        where: Path = ("dpia", "review", "next") if isinstance(stated, dict) else ("dpia", "review")
        yield finding("DPIA-35-11-REVIEW", where)
        return
    if due < ctx.today:
        yield finding("DPIA-REVIEW-OVERDUE", ("dpia", "review", "next"), due=due.isoformat(),
                      days=(ctx.today - due).days)
    last = _date(review.get("last"))
    if last is not None and (due - last).days > THREE_YEARS_DAYS:
        yield finding("DPIA-35-11-INTERVAL", ("dpia", "review", "next"), due=due.isoformat(), last=last.isoformat())
    if _empty(review.get("triggers")):
        yield finding("DPIA-35-11-TRIGGERS", ("dpia", "review", "triggers"))


# -- Art. 36 -------------------------------------------------------------------------------------------------

def prior_consultation(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    dpia = _dpia(doc)
    if dpia is None:
        return
    consultation = dpia.get("prior_consultation")
    decision = consultation.get("decision") if isinstance(consultation, dict) else None
    if decision is None:
        yield finding("DPIA-36-DECISION", ("dpia", "prior_consultation"))
    for i, risk in model.listed(dpia, "risks"):
        if model.risk_level(risk.get("residual")) != "high":
            continue
        path: Path = ("dpia", "risks", i, "residual")
        if decision is None:
            # Art. 36(1) asks for a decision on any high residual risk; with no measures either, nothing treats it.
            yield finding("DPIA-36-HIGH-RESIDUAL", path, risk=risk.get("id", "?"),
                          measures="@dpia-measures-none" if _empty(risk.get("measures")) else "@dpia-measures-some")
        elif decision in ("not-required", "required"):
            yield finding("DPIA-36-NOT-CONSULTED", path, risk=risk.get("id", "?"),
                          decision=f"@dpia-decision-{decision}")


# -- sign-off ------------------------------------------------------------------------------------------------

def sign_offs(doc: Mapping[str, Any], ctx: Context) -> Iterator[Finding]:
    """The DPO's opinion and the controller's decision cover the current revision, hash for hash. A template is the
    DPO's own assessment: there the DPO's sign-off is the decision; each clinic decides for itself."""
    state = ctx.state
    if state is None:
        return  # a document outside the store: no sign-offs to speak of
    deciding = "dpo" if _is_template(doc) else "controller"
    if deciding == "controller" and not state.dpo_on_template and not any(
            s.role == "dpo" and s.revision == state.revision for s in state.sign_offs):
        yield finding("DPIA-35-2-DPO-ADVICE", ("dpo",), revision=state.revision_number)
    decisions = [s for s in state.sign_offs if s.role == deciding]
    if not decisions:
        code = "DPIA-35-2-DPO-ADVICE" if deciding == "dpo" else "DPIA-SIGNOFF-MISSING"
        yield finding(code, ("dpo",) if deciding == "dpo" else (), revision=state.revision_number)
        return
    latest = decisions[-1]
    if latest.revision != state.revision:
        yield finding("DPIA-SIGNOFF-STALE", (), signed=latest.revision_number, signed_hash=latest.revision[:19],
                      current=state.revision_number, name=latest.name, role=f"@dpia-signer-{latest.role}")
        if state.template_revision is not None and latest.template_revision is not None \
                and latest.template_revision != state.template_revision:
            yield finding("DPIA-TEMPLATE-CHANGED", (), signed=latest.template_revision,
                          current=state.template_revision, changes=state.template_changes)
    elif latest.decision == "reject":
        yield finding("DPIA-SIGNOFF-REJECTED", (), name=latest.name, revision=state.revision_number,
                      role=f"@dpia-signer-{latest.role}")


CHECKS: list[Check] = [
    schema_shape, duplicate_ids, references, placeholders,
    controller_identity, register_dpo, record_lists, record_transfers, record_retention, record_security,
    legal_basis,
    processor_records,
    role_chain, joint_arrangement, agreement_present, agreement_content, sub_processor_approved,
    dpia_present, dpia_scope, dpia_description, dpia_necessity, dpia_risks, dpia_measures, dpia_codes_and_views,
    dpia_review,
    prior_consultation,
    sign_offs,
]


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity >= Severity.ERROR]


SIGN_OFF_CODES = frozenset({"DPIA-SIGNOFF-MISSING", "DPIA-SIGNOFF-STALE", "DPIA-SIGNOFF-REJECTED",
                            "DPIA-TEMPLATE-CHANGED", "DPIA-35-2-DPO-ADVICE"})
