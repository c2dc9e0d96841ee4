"""The access rules, as pure functions: may this caller do this to this patient's data, and if not, why not?

They follow DDS as spec/sharing-and-clinical.md §2 and §4 describe it:
- a GP system (`source`) submits and replaces only documents its own organisation authored;
- a citizen reads only their own documents and own access log, and sets and lifts blocks (spærring);
- a clinician reads a patient's documents only during an active treatment relation; a block on that clinician
  or a general block answers with nothing (not in MinLog); blocks on an author organisation or a period filter
  documents out, with a warning; værdispring (consent override) with a reason lifts blocks and is shown to the
  citizen as such;
- an admin has the admin endpoints and the full audit log;
- a citizen reads another citizen's documents and MinLog as a proxy: the parent with custody of a child under 15,
  or the holder of the subject's power of attorney (Digital Fuldmagt), while the proxy lasts (§2.1 L 44's
  § 39 a, §2.2 Digital Fuldmagt, §4 "Access rules"); the subject's blocks are about professionals and do not
  bind the proxy, who does not manage them either;
- a document type may be embargoed: a citizen (and a proxy) sees it only once the configured delay after its
  date has passed (§2.6); professionals are not delayed.
Routes never decide access themselves; every route is declared with its rule (ROUTES in app.py), which its
handler is given and must ask.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kroniker.reference_server.inputs import danish_day_start
from kroniker.reference_server.tokens import Principal
from kroniker.validators.identifiers import cpr_birth_date

OVERRIDE_REASONS = ("consent", "not-contactable", "vital-interest")
BLOCK_KINDS = ("professional", "organisation", "period", "general")
PROXY_KINDS = ("custody", "fuldmagt")
CUSTODY_AGE = 15  # parents' digital access to a child's health data ends at 15 (§2.1: L 44, sundhedsloven § 39 a)


@dataclass(frozen=True)
class Relation:
    patient_cpr: str
    clinician_auth_id: str | None
    org_sor: str | None
    start: dt.datetime
    end: dt.datetime | None
    evidence: str = ""


@dataclass(frozen=True)
class Block:
    id: str
    patient_cpr: str
    kind: str
    clinician_auth_id: str | None = None
    org_sor: str | None = None
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None


@dataclass(frozen=True)
class Proxy:
    """A citizen (holder) who may read another citizen's (subject's) documents, from start until end."""

    id: str
    kind: str  # custody | fuldmagt
    holder_cpr: str
    subject_cpr: str
    start: dt.datetime
    end: dt.datetime | None


@dataclass(frozen=True)
class DocInfo:
    """What the rules need to know of a stored document."""

    id: str
    patient_cpr: str
    author_org_sor: str
    status: str
    when: dt.datetime | None  # service start (or registration) time
    type_code: str | None = None  # the document's type (what an embargo names)
    dated: dt.datetime | None = None  # the document's date (Composition.date, else its registration): embargo


@dataclass(frozen=True)
class Decision:
    """Allowed or not, why, and what the audit log and MinLog make of it."""

    allowed: bool
    reason: str = ""  # a message key (for the OperationOutcome and the audit log)
    status: int = 200
    minlog: bool = False  # a professional's look-up, shown in the citizen's MinLog
    override: str | None = None  # the værdispring reason when blocks were lifted
    nothing: bool = False  # a general block: answered with nothing
    hidden: tuple[Block, ...] = field(default_factory=tuple)  # data-specific blocks that filter documents
    acting_for: str | None = None  # a citizen reading as a proxy: its kind (custody, fuldmagt)
    embargo: tuple[tuple[str, dt.datetime], ...] = ()  # (type code, dated after this: not yet seen)

    def visible(self, doc: DocInfo) -> bool:
        return not any(_block_hides(b, doc) for b in self.hidden) and not embargoed(self.embargo, doc)


def deny(reason: str, status: int = 403) -> Decision:
    return Decision(False, reason, status)


# -- submitting --------------------------------------------------------------------------------------

def may_submit(p: Principal, author_org_sor: str) -> Decision:
    if p.role != "source":
        return deny("only-sources-submit")
    if p.sor != author_org_sor:
        return deny("not-own-organisation")
    return Decision(True)


def may_replace(p: Principal, old: DocInfo | None, new_patient: str, new_author_sor: str) -> Decision:
    first = may_submit(p, new_author_sor)
    if not first.allowed:
        return first
    if old is None:
        return deny("replaced-not-found", 404)
    if old.patient_cpr != new_patient:
        return deny("replace-other-patient", 422)
    if old.status != "current":
        return deny("replace-not-current", 422)
    if old.author_org_sor != p.sor:
        return deny("replace-other-organisation")
    return Decision(True)


# -- reading ---------------------------------------------------------------------------------------------

def may_read(p: Principal, patient_cpr: str, relations: Sequence[Relation], blocks: Sequence[Block],
             override: str | None, now: dt.datetime, proxies: Sequence[Proxy] = (),
             embargo: Mapping[str, float] | None = None) -> Decision:
    """Searching a patient's documents or retrieving one (the same rules for both). A citizen reads their own,
    or another's through an active proxy (acting_for); either way an embargoed document type is held back."""
    if p.role == "citizen":
        held = citizen_embargo(embargo, now)
        if p.cpr == patient_cpr:
            return Decision(True, embargo=held)  # blocks do not apply to the patient; not a professional look-up
        proxy = acting_for(p, patient_cpr, proxies, now)
        if proxy is None:
            return deny("citizen-other-patient")
        # The subject's blocks are about professionals (§2.4): they do not bind the proxy, who reads what the
        # subject would. The look-up is shown in the subject's MinLog (§2.5: "access as parent, guardian or
        # attorney").
        return Decision(True, minlog=True, acting_for=proxy.kind, embargo=held)
    if p.role != "clinician":
        return deny("role-may-not-read")
    if not any(_relation_covers(r, p, now) for r in relations):
        return deny("no-treatment-relation")
    if override is not None:
        if override not in OVERRIDE_REASONS:
            return deny("override-reason", 400)
        return Decision(True, minlog=True, override=override)
    active = [b for b in blocks if _block_active(b, now)]
    if any(b.kind == "general" or (b.kind == "professional" and b.clinician_auth_id == p.auth_id)
           for b in active):
        # DDS: a negative consent for this user answers with nothing, and MinLog shows nothing.
        return Decision(True, "blocked", nothing=True)
    hiding = tuple(b for b in active if b.kind in ("organisation", "period"))
    return Decision(True, minlog=True, hidden=hiding)


def own_clinic(p: Principal, relations: Sequence[Relation], now: dt.datetime) -> bool:
    """Whether the caller is the GP system of the clinic the patient is listed with: an active treatment relation
    with evidence `assigned-gp` for the caller's organisation (registered by an admin through /admin/relations)."""
    return p.role == "source" and p.sor is not None and any(
        r.evidence == "assigned-gp" and r.clinician_auth_id is None and r.org_sor == p.sor and r.start <= now
        and (r.end is None or r.end > now) for r in relations)


def may_submit_response(p: Principal, patient_cpr: str, relations: Sequence[Relation], now: dt.datetime) -> Decision:
    """A QuestionnaireResponse (and triage requests on one): the citizen about themselves, or the patient's own
    clinic's system (the GP's assessment, or the patient's answers entered at the clinic)."""
    if p.role == "citizen":
        return Decision(True) if p.cpr == patient_cpr else deny("citizen-other-patient")
    if p.role == "source":
        return Decision(True) if own_clinic(p, relations, now) else deny("not-own-clinic")
    return deny("role-may-not-submit-response")


def may_decide_triage(p: Principal, patient_cpr: str, relations: Sequence[Relation], now: dt.datetime) -> Decision:
    """Asking for a triage suggestion and recording the GP's decision: the patient's own clinic's system only."""
    if p.role == "source":
        return Decision(True) if own_clinic(p, relations, now) else deny("not-own-clinic")
    return deny("only-own-clinic-triages")


def may_read_clinical(p: Principal, patient_cpr: str, relations: Sequence[Relation], blocks: Sequence[Block],
                      override: str | None, now: dt.datetime, proxies: Sequence[Proxy] = ()) -> Decision:
    """Responses, scores and triage impressions: as may_read (the citizen, a clinician with a treatment relation
    under the block and værdispring rules), and the patient's own clinic's system (a professional look-up, in
    MinLog). A general block, or the patient's block on the clinic itself, answers the clinic with nothing."""
    if p.role == "source":
        if not own_clinic(p, relations, now):
            return deny("not-own-clinic")
        if any(_block_active(b, now) and (b.kind == "general" or (b.kind == "organisation" and b.org_sor == p.sor))
               for b in blocks):
            return Decision(True, "blocked", nothing=True)
        return Decision(True, minlog=True)
    return may_read(p, patient_cpr, relations, blocks, override, now, proxies)


def _relation_covers(r: Relation, p: Principal, now: dt.datetime) -> bool:
    if r.start > now or (r.end is not None and r.end <= now):
        return False
    if r.clinician_auth_id:
        # A relation for a clinician at an organisation holds there only.
        return r.clinician_auth_id == p.auth_id and (r.org_sor is None or r.org_sor == p.sor)
    return r.org_sor is not None and r.org_sor == p.sor


def _block_active(b: Block, now: dt.datetime) -> bool:
    # An organisation or professional block may carry a validity period; a period block names the data's period.
    if b.kind in ("organisation", "professional", "general"):
        if b.period_start and b.period_start > now:
            return False
        if b.period_end and b.period_end <= now:
            return False
    return True


def _block_hides(b: Block, doc: DocInfo) -> bool:
    if b.kind == "organisation":
        return doc.author_org_sor == b.org_sor
    if b.kind == "period":
        if doc.when is None:
            return False
        return (b.period_start is None or doc.when >= b.period_start) and \
            (b.period_end is None or doc.when < b.period_end)
    return False


# -- proxies and embargo ----------------------------------------------------------------------------------

def coming_of_age(cpr: str, age: int = CUSTODY_AGE) -> dt.datetime | None:
    """When the person a CPR number names turns `age` (the Danish day of that birthday begins), as naive UTC;
    None when the number names no date. Born on 29 February: 1 March in a year without one."""
    born = cpr_birth_date(cpr)
    if born is None:
        return None
    try:
        birthday = born.replace(year=born.year + age)
    except ValueError:
        birthday = dt.date(born.year + age, 3, 1)
    return danish_day_start(birthday)


def proxy_covers(x: Proxy, now: dt.datetime) -> bool:
    """Whether the proxy is in force now: within its period, and custody only while the child is under 15
    (§2.1, § 39 a) whatever end was registered."""
    if x.start > now or (x.end is not None and x.end <= now):
        return False
    if x.kind == "custody":
        grown = coming_of_age(x.subject_cpr)
        return grown is not None and now < grown
    return x.kind == "fuldmagt"


def acting_for(p: Principal, patient_cpr: str, proxies: Sequence[Proxy], now: dt.datetime) -> Proxy | None:
    """The proxy in force that lets citizen p act for the patient now (None: no such proxy, or p is no citizen
    or the patient themselves)."""
    if p.role != "citizen" or not p.cpr or p.cpr == patient_cpr:
        return None
    return next((x for x in proxies if x.holder_cpr == p.cpr and x.subject_cpr == patient_cpr
                 and proxy_covers(x, now)), None)


def citizen_embargo(embargo: Mapping[str, float] | None, now: dt.datetime) -> tuple[tuple[str, dt.datetime], ...]:
    """Per embargoed document type, the date after which a document of it is not yet shown to a citizen (§2.6:
    a configurable delay for the citizen view only, default none)."""
    return tuple((code, now - dt.timedelta(hours=hours)) for code, hours in sorted((embargo or {}).items())
                 if hours > 0)


def embargoed(held: Sequence[tuple[str, dt.datetime]], doc: DocInfo) -> bool:
    """Whether the document is still under its type's embargo: dated after now minus the delay (a document
    without a date is dated by its registration; one with neither is held back)."""
    for code, after in held:
        if doc.type_code == code:
            return doc.dated is None or doc.dated > after
    return False


def validate_proxy(body: dict[str, Any]) -> str | None:
    """What is wrong with a proxy request's kind and CPR numbers (a message key), or None."""
    if body.get("kind") not in PROXY_KINDS:
        return "proxy-kind"
    for name in ("holder", "subject"):
        value = body.get(name)
        if not isinstance(value, str) or cpr_birth_date(value) is None:
            return "proxy-cpr"
    if body["holder"] == body["subject"]:
        return "proxy-self"
    return None


def proxy_period(kind: str, subject_cpr: str, start: dt.datetime, end: dt.datetime | None
                 ) -> tuple[dt.datetime | None, str | None]:
    """A proxy's end as registered, or why it cannot be: custody ends at the latest when the child turns 15 (and
    cannot begin after); fuldmagt is given by someone aged 15 or more (§2.2) and ends when registered to."""
    born, grown = cpr_birth_date(subject_cpr), coming_of_age(subject_cpr)
    if born is None or grown is None:
        return None, "proxy-cpr"
    if born > start.date():
        return None, "proxy-not-born"
    if kind == "custody":
        if start >= grown:
            return None, "proxy-child-over-15"
        return (grown if end is None or end > grown else end), None
    if start < grown:
        return None, "proxy-grantor-under-15"
    return end, None


# -- the access log, blocks and administration ---------------------------------------------------------

def may_read_audit(p: Principal, patient_cpr: str | None, proxies: Sequence[Proxy] = (),
                   now: dt.datetime | None = None) -> Decision:
    """The full log (admin); a citizen's own MinLog, or the subject's MinLog through an active proxy (a look-up
    the subject's MinLog shows in its turn)."""
    if p.role == "admin":
        return Decision(True)
    if p.role == "citizen":
        if patient_cpr is None or patient_cpr == p.cpr:
            return Decision(True)
        proxy = acting_for(p, patient_cpr, proxies, now) if now is not None else None
        if proxy is not None:
            return Decision(True, minlog=True, acting_for=proxy.kind)
        return deny("citizen-other-patient")
    return deny("role-may-not-read-audit")


def may_manage_blocks(p: Principal, patient_cpr: str) -> Decision:
    """The citizen's own blocks (or an admin on their behalf). Not a proxy's: what the notes hold of Digital
    Fuldmagt (§2.2) is seeing the Sundhedsjournal and lab results, and of parents' access (§2.1, § 39 a) access to
    the child's data; neither says a proxy sets or lifts the subject's blocks (Min Spærring, §2.4)."""
    if p.role == "admin":
        return Decision(True)  # on the citizen's behalf (tests, support)
    if p.role == "citizen" and p.cpr == patient_cpr:
        return Decision(True)
    return deny("only-the-citizen-blocks")


def may_administer(p: Principal) -> Decision:
    return Decision(True) if p.role == "admin" else deny("admin-only")


def may_see_metadata(p: Principal | None) -> Decision:
    return Decision(True)  # the CapabilityStatement is public, as on any FHIR server


def may_check_health(p: Principal | None) -> Decision:
    return Decision(True)  # liveness for a load balancer: no data, no caller


def _text(value: Any, pattern: str) -> bool:
    import re

    return value is None or (isinstance(value, str) and re.fullmatch(pattern, value) is not None)


IDENTIFIER_FORMATS = {
    "patient": r"[0-9]{10}",  # CPR
    "clinician": r"[A-Za-z0-9]{1,20}",  # authorisation id
    "organisation": r"[0-9]{1,20}",  # SOR
    "evidence": r"[a-z][a-z0-9-]{0,39}",
}


def bad_field(body: dict[str, Any]) -> str | None:
    """The first field of a block or relation request that is not a string of its form, or None."""
    for name, pattern in IDENTIFIER_FORMATS.items():
        if not _text(body.get(name), pattern):
            return name
    for name in ("start", "end"):
        if body.get(name) is not None and not isinstance(body.get(name), str):
            return name
    return None


def validate_block(body: dict[str, Any]) -> str | None:
    """What is wrong with a block request (a message key), or None."""
    kind = body.get("kind")
    if kind not in BLOCK_KINDS:
        return "block-kind"
    if bad_field(body):
        return "bad-field"
    if kind == "professional" and not body.get("clinician"):
        return "block-needs-clinician"
    if kind == "organisation" and not body.get("organisation"):
        return "block-needs-organisation"
    if kind == "period" and not (body.get("start") or body.get("end")):
        return "block-needs-period"
    return None


# -- the pages (pages.py): the same rules, behind a role's own page --------------------------------------

def may_sign_in(p: Principal | None) -> Decision:
    return Decision(True)  # the sign-in form and its answer: the token itself is what is checked


def may_see_citizen_page(p: Principal, patient_cpr: str | None = None, relations: Sequence[Relation] = (),
                         blocks: Sequence[Block] = (), override: str | None = None,
                         now: dt.datetime | None = None, proxies: Sequence[Proxy] = (),
                         embargo: Mapping[str, float] | None = None) -> Decision:
    """The citizen's page (Min side): citizens only; what it shows of a patient follows may_read."""
    if p.role != "citizen":
        return deny("citizen-page-only")
    if patient_cpr is None:
        return Decision(True)
    return may_read(p, patient_cpr, relations, blocks, override, now or dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    proxies, embargo)


def may_manage_own_blocks(p: Principal, patient_cpr: str | None) -> Decision:
    """Blocks set and lifted from the citizen's page: the citizen's own, as may_manage_blocks."""
    if p.role != "citizen":
        return deny("citizen-page-only")
    if patient_cpr is None:
        return deny("only-the-citizen-blocks")
    return may_manage_blocks(p, patient_cpr)


def may_see_clinician_page(p: Principal, patient_cpr: str | None = None, relations: Sequence[Relation] = (),
                           blocks: Sequence[Block] = (), override: str | None = None,
                           now: dt.datetime | None = None, proxies: Sequence[Proxy] = (),
                         embargo: Mapping[str, float] | None = None) -> Decision:
    """The clinician's page: clinicians only; a patient's documents on it follow may_read (treatment relation,
    blocks, værdispring), exactly as GET /fhir/DocumentReference."""
    if p.role != "clinician":
        return deny("clinician-page-only")
    if patient_cpr is None:
        return Decision(True)  # the look-up form itself shows no one's data
    return may_read(p, patient_cpr, relations, blocks, override, now or dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    proxies, embargo)

