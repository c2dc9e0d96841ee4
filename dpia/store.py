"""The register's storage: immutable revisions, sign-offs bound to a revision's hash, clinics' adoptions as deltas.

Tables (SQLAlchemy Core) in the project's one database, created by the Alembic migration `0002_dpia`:
- `dpia_registers`: one row per register (a template, a clinic's register, or a stand-alone one); it is retired,
  never deleted;
- `dpia_revisions`: every change is a new row, never updated: the content (the register; for a clinic only its
  delta against a template revision), author, time, reason and the sha256 of the (effective) register;
- `dpia_sign_offs`: the DPO's opinion and the controller's decision, each naming the revision number and hash it
  covers, so an approval cannot drift from its content.

A clinic's register is the template revision its newest revision names with the clinic's delta applied
(`kroniker.dpia.delta`). When the template gets a new revision, every adopting clinic gets a new revision on it in
the same transaction (same delta, reason naming the template change), so each clinic's history shows the change,
its effective register follows the template, and its sign-off no longer matches: it needs a new one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kroniker.dpia import checks, delta, model
from kroniker.dpia.diff import diff, removed_items
from kroniker.validators.findings import Finding

metadata = sa.MetaData()

registers = sa.Table(
    "dpia_registers", metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # template | clinic | register
    sa.Column("template_id", sa.String(100), sa.ForeignKey("dpia_registers.id")),  # a clinic's template
    sa.Column("clinic_sor", sa.String(20)),
    sa.Column("head", sa.Integer, nullable=False),  # the newest revision's number
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("retired", sa.DateTime),
    sa.Column("retired_by", sa.String(200)),
    sa.Column("retired_reason", sa.Text),
    sa.Index("ix_dpia_registers_template", "template_id"),
)

revisions = sa.Table(
    "dpia_revisions", metadata,
    sa.Column("register_id", sa.String(100), sa.ForeignKey("dpia_registers.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(71), nullable=False),  # sha256:<hex> of the (effective) register
    sa.Column("content", sa.Text, nullable=False),  # canonical JSON: the register, or a clinic's delta
    sa.Column("template_number", sa.Integer),  # a clinic's: the template revision its delta applies to
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),  # UTC
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_dpia_revisions_hash", "hash"),
)

sign_offs = sa.Table(
    "dpia_sign_offs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("register_id", sa.String(100), sa.ForeignKey("dpia_registers.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(71), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # dpo | controller
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("decision", sa.String(40), nullable=False),  # approve | approve-with-conditions | reject
    sa.Column("statement", sa.Text),
    sa.Column("despite_errors", sa.Boolean, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),  # UTC
    sa.Index("ix_dpia_sign_offs_register", "register_id", "revision"),
)

SOR = re.compile(r"^[0-9]{1,20}$")
ROLES = ("dpo", "controller")
DECISIONS = ("approve", "approve-with-conditions", "reject")


class StoreError(Exception):
    """A request the store refuses; `key` and `params` give the message in the catalogue (Danish and English)."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = params
        self.source: str | None = None  # the file it is about, when one of several is imported
        super().__init__(f"{key}: {params}")

    def message(self, lang: str = "en") -> str:
        from kroniker.validators import messages

        return messages.text(self.key, lang, **self.params)


# -- values the store hands out ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RegisterInfo:
    id: str
    kind: str
    template_id: str | None
    clinic_sor: str | None
    head: int
    created: datetime
    retired: datetime | None = None
    retired_by: str | None = None
    retired_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Revision:
    register_id: str
    number: int
    hash: str
    content: dict[str, Any]  # the register; for a clinic, its delta
    template_number: int | None
    author: str
    time: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Arrival:
    """An imported register to take in: read and validated (exchange.read), with what the file says of it."""

    source: str  # the file, for messages
    document: dict[str, Any]
    author: str
    reason: str
    revision: Mapping[str, Any] | None = None
    adoption: Mapping[str, Any] | None = None
    signed: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Received:
    register_id: str
    new: Revision | None  # None: the store already had this content
    current: Revision
    sign_offs: int  # taken over
    passed_over: int = 0  # in the file, but not for the revision the file holds
    # The file's content was already here, but as a revision this import made: a clinic's register revised by its
    # template's change earlier in the same import (its own values unchanged, its revision new).
    revised_here: bool = False


@dataclass(frozen=True, slots=True)
class Effective:
    """A register as it reads at one revision: for a clinic, the template revision with the delta applied."""

    info: RegisterInfo
    revision: Revision
    document: dict[str, Any]
    template: Revision | None = None

    @property
    def hash(self) -> str:
        return self.revision.hash

    @property
    def delta(self) -> dict[str, Any] | None:
        return self.revision.content if self.template is not None else None


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def format_time(moment: datetime) -> str:
    """UTC as the export writes it: seconds, and microseconds only where there are any."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.removesuffix("Z"))


def default_url() -> str:
    """The database the reference server uses: $KRONIKER_DATABASE, else SQLite at $KRONIKER_HOME/kroniker.db
    (default ~/.kroniker)."""
    from kroniker.reference_server.settings import Settings

    return Settings.from_env().database


def _dump(content: Any) -> str:
    return model.canonical(content).decode("utf-8")


# -- the store -----------------------------------------------------------------------------------------------

class Store:
    """The register's storage on one database (SQLite or PostgreSQL). Every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        from kroniker.reference_server.db import make_engine
        from kroniker.reference_server.db import migrate as run_migrations

        engine = make_engine(url or default_url())
        if migrate:
            run_migrations(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- reading ---------------------------------------------------------------------------------------------

    def registers(self, *, kind: str | None = None, include_retired: bool = False,
                  template_id: str | None = None) -> list[RegisterInfo]:
        query = sa.select(registers).order_by(registers.c.id)
        if kind:
            query = query.where(registers.c.kind == kind)
        if template_id:
            query = query.where(registers.c.template_id == template_id)
        if not include_retired:
            query = query.where(registers.c.retired.is_(None))
        with self.engine.connect() as conn:
            return [RegisterInfo(**row._mapping) for row in conn.execute(query)]

    def info(self, register_id: str, conn: Connection | None = None) -> RegisterInfo:
        rows = self._rows(conn, sa.select(registers).where(registers.c.id == register_id))
        if not rows:
            raise StoreError("dpia-no-register", register=register_id)
        return RegisterInfo(**rows[0]._mapping)

    def _rows(self, conn: Connection | None, query: Any) -> list[Any]:
        """The rows of a query, on the caller's connection (inside its transaction) or a fresh one."""
        if conn is not None:
            return list(conn.execute(query))
        with self.engine.connect() as own:
            return list(own.execute(query))

    def revisions(self, register_id: str) -> list[Revision]:
        self.info(register_id)
        query = sa.select(revisions).where(revisions.c.register_id == register_id).order_by(revisions.c.number)
        with self.engine.connect() as conn:
            return [_revision(row) for row in conn.execute(query)]

    def revision(self, register_id: str, ref: str | int | None = None, conn: Connection | None = None) -> Revision:
        """A revision by number (3, 'r3'), by hash or a prefix of it ('sha256:1f2e', '1f2e'), or the newest."""
        info = self.info(register_id, conn)
        query = sa.select(revisions).where(revisions.c.register_id == register_id)
        number = _number(ref)
        if ref is None:
            query = query.where(revisions.c.number == info.head)
        elif number is not None:
            query = query.where(revisions.c.number == number)
        else:
            prefix = str(ref).lower()
            prefix = prefix if prefix.startswith("sha256:") else f"sha256:{prefix}"
            if len(prefix) < len("sha256:") + 4:
                raise StoreError("dpia-ref-short", ref=ref)
            query = query.where(revisions.c.hash.startswith(prefix, autoescape=True))
        rows = self._rows(conn, query)
        if not rows:
            raise StoreError("dpia-no-revision", register=register_id, ref=ref)
        if len({r.hash for r in rows}) > 1:
            raise StoreError("dpia-ref-ambiguous", register=register_id, ref=ref)
        return _revision(max(rows, key=lambda r: r.number))

    def effective(self, register_id: str, ref: str | int | None = None) -> Effective:
        with self.engine.connect() as conn:
            return self._effective(conn, register_id, ref)

    def _effective(self, conn: Connection, register_id: str, ref: str | int | None = None) -> Effective:
        info = self.info(register_id, conn)
        rev = self.revision(register_id, ref, conn)
        if info.kind != "clinic":
            return Effective(info, rev, rev.content)
        assert info.template_id is not None and rev.template_number is not None
        template = self.revision(info.template_id, rev.template_number, conn)
        return Effective(info, rev, delta.apply(template.content, rev.content), template)

    def sign_offs(self, register_id: str, conn: Connection | None = None) -> list[checks.SignOff]:
        query = (sa.select(sign_offs, revisions.c.template_number)
                 .join(revisions, sa.and_(revisions.c.register_id == sign_offs.c.register_id,
                                          revisions.c.number == sign_offs.c.revision))
                 .where(sign_offs.c.register_id == register_id).order_by(sign_offs.c.created, sign_offs.c.id))
        return [_sign_off(row) for row in self._rows(conn, query)]

    # -- writing ---------------------------------------------------------------------------------------------

    def save(self, document: Mapping[str, Any], *, author: str, reason: str, time: datetime | None = None,
             number: int | None = None) -> Revision | None:
        """Store a template or stand-alone register: a new register, or a new revision of one (None when nothing
        changed). A template's new revision reaches every clinic that adopted it."""
        document = dict(document)
        model.require_valid(document, document.get("id", "<register>"))
        if document["kind"] == "clinic":
            raise StoreError("dpia-clinic-needs-template", register=document["id"])
        with self._write() as conn:
            return self._save(conn, document, author=author, reason=reason, time=time, number=number)

    def _save(self, conn: Connection, document: dict[str, Any], *, author: str, reason: str,
              time: datetime | None = None, number: int | None = None) -> Revision | None:
        time = time or utc_now()
        existing = conn.execute(sa.select(registers).where(registers.c.id == document["id"])).first()
        if existing is None:
            conn.execute(registers.insert().values(id=document["id"], kind=document["kind"], head=number or 1,
                                                   created=time))
            return self._add_revision(conn, document["id"], number or 1, document, None, author, time, reason)
        info = RegisterInfo(**existing._mapping)
        _writable(info, document["kind"])
        head = self.revision(info.id, info.head, conn)
        if head.hash == model.register_hash(document):
            return None
        _nothing_dropped(head.content, document)
        rev = self._next(conn, info, document, None, author, time, reason)
        if info.kind == "template":
            self._propagate(conn, info.id, rev)
        return rev

    def adopt(self, template_id: str, sor: str, changes: Mapping[str, Any], *, author: str, reason: str,
              time: datetime | None = None) -> Revision:
        """A clinic's register made from the template's newest revision; `changes` is the clinic's delta."""
        if not SOR.match(sor):
            raise StoreError("dpia-bad-sor", sor=sor)
        register_id = f"clinic-{sor}"
        with self._write() as conn:
            template = self._template(conn, template_id)
            if conn.execute(sa.select(registers.c.id).where(registers.c.id == register_id)).first():
                raise StoreError("dpia-already-adopted", register=register_id, template=template_id)
            target = delta.apply(template.content, {**changes, "id": register_id, "kind": "clinic"}, share=True)
            return self._new_clinic(conn, register_id, sor, template, target, author=author, reason=reason,
                                    time=time or utc_now())

    def _new_clinic(self, conn: Connection, register_id: str, sor: str | None, template: Revision,
                    target: dict[str, Any], *, author: str, reason: str, time: datetime,
                    number: int = 1) -> Revision:
        clinic_delta = delta.make(template.content, target)
        model.require_valid_where(target, clinic_delta, register_id)
        # A clinic retires what does not apply to it; a delta that deletes a template's item (null) would drop a
        # party, risk or measure of the common assessment from its register without a trace.
        for key in clinic_delta:  # only the parts the delta touches: the rest is the template's, unchanged
            _nothing_dropped(template.content.get(key), target.get(key), (key,))
        conn.execute(registers.insert().values(id=register_id, kind="clinic", template_id=template.register_id,
                                               clinic_sor=sor, head=number, created=time))
        return self._add_revision(conn, register_id, number, clinic_delta, template, author, time, reason)

    def save_clinic(self, document: Mapping[str, Any], *, author: str, reason: str,
                    based_on: Revision | None = None, time: datetime | None = None) -> Revision | None:
        """A new revision of a clinic's register from its effective form: the delta is taken against the template
        revision the document was read from (`based_on`, default the clinic's current one) and applied to the
        template's newest revision, so a clinic's edit never undoes a template change it had not seen."""
        document = dict(document)
        model.require_valid(document, document.get("id", "<register>"))
        with self._write() as conn:
            info = self.info(document["id"], conn)
            _writable(info, "clinic")
            current = self.revision(info.id, info.head, conn)
            assert info.template_id is not None
            base = based_on or self.revision(info.template_id, current.template_number, conn)
            return self._save_clinic_delta(conn, info, delta.make(base.content, document), author=author,
                                           reason=reason, time=time or utc_now())

    def _save_clinic_delta(self, conn: Connection, info: RegisterInfo, clinic_delta: dict[str, Any], *, author: str,
                           reason: str, time: datetime) -> Revision | None:
        assert info.template_id is not None
        template = self._template(conn, info.template_id)
        current = self.revision(info.id, info.head, conn)
        document = delta.apply(template.content, clinic_delta, share=True)
        if current.template_number == template.number and current.content == clinic_delta:
            return None
        model.require_valid_where(document, clinic_delta, info.id)
        old = self._effective(conn, info.id, info.head).document
        _nothing_dropped(old, document)
        return self._next(conn, info, clinic_delta, template, author, time, reason)

    def _template(self, conn: Connection, template_id: str) -> Revision:
        info = self.info(template_id, conn)
        if info.kind != "template":
            raise StoreError("dpia-not-a-template", register=template_id)
        if info.retired:
            raise StoreError("dpia-retired", register=template_id)
        return self.revision(template_id, info.head, conn)

    def _next(self, conn: Connection, info: RegisterInfo, content: dict[str, Any], template: Revision | None,
              author: str, time: datetime, reason: str) -> Revision:
        number = info.head + 1
        # The head moves only from the value read: a concurrent writer makes this fail, not overwrite.
        moved = conn.execute(registers.update().where(registers.c.id == info.id, registers.c.head == info.head)
                             .values(head=number)).rowcount
        if moved != 1:
            raise StoreError("dpia-conflict", register=info.id)
        return self._add_revision(conn, info.id, number, content, template, author, time, reason)

    def _add_revision(self, conn: Connection, register_id: str, number: int, content: dict[str, Any],
                      template: Revision | None, author: str, time: datetime, reason: str) -> Revision:
        document = delta.apply(template.content, content, share=True) if template else content
        rev = Revision(register_id, number, model.register_hash(document), content,
                       template.number if template else None, author, time, reason)
        conn.execute(revisions.insert().values(
            register_id=register_id, number=number, hash=rev.hash, content=_dump(content),
            template_number=rev.template_number, author=author, created=time, reason=reason))
        return rev

    def _propagate(self, conn: Connection, template_id: str, template: Revision) -> int:
        """Every clinic on the template gets a revision on its new one: the clinic's delta, unchanged."""
        rows = conn.execute(
            sa.select(registers.c.id, registers.c.head, revisions.c.content)
            .join(revisions, sa.and_(revisions.c.register_id == registers.c.id, revisions.c.number == registers.c.head))
            .where(registers.c.template_id == template_id, registers.c.retired.is_(None))).all()
        if not rows:
            return 0
        reason = f"template {template_id} r{template.number}: {template.reason}"
        values = []
        for row in rows:
            clinic_delta = json.loads(row.content)
            document = delta.apply(template.content, clinic_delta, share=True)
            values.append({"register_id": row.id, "number": row.head + 1, "hash": model.register_hash(document),
                           "content": row.content, "template_number": template.number, "author": template.author,
                           "created": template.time, "reason": reason})
        conn.execute(revisions.insert(), values)
        conn.execute(registers.update().where(registers.c.template_id == template_id, registers.c.retired.is_(None))
                     .values(head=registers.c.head + 1))
        return len(values)

    def sign_off(self, register_id: str, *, role: str, name: str, decision: str, statement: str | None = None,
                 expected: str | int | None = None, despite_errors: bool = False, today: date | None = None,
                 time: datetime | None = None) -> checks.SignOff:
        """Sign the newest revision. `expected` names the revision the signer read (number or hash prefix); if the
        register has moved on since, nothing is signed. An approval is refused while `check` finds errors in the
        content, unless `despite_errors` says the signer knows (and that is recorded)."""
        if role not in ROLES:
            raise StoreError("dpia-bad-role", role=role)
        if decision not in DECISIONS:
            raise StoreError("dpia-bad-decision", decision=decision)
        with self._write() as conn:
            eff = self._effective(conn, register_id)
            if eff.info.retired:
                raise StoreError("dpia-retired", register=register_id)
            if expected is not None and self.revision(register_id, expected, conn).hash != eff.hash:
                raise StoreError("dpia-signoff-moved", register=register_id, expected=expected,
                                 current=eff.revision.number, hash=eff.hash)
            if decision != "reject" and not despite_errors:
                errors = [f for f in checks.errors(checks.check(eff.document, today or date.today()))
                          if f.code not in checks.SIGN_OFF_CODES]
                if errors:
                    raise StoreError("dpia-signoff-errors", register=register_id, count=len(errors),
                                     codes=", ".join(sorted({f.code for f in errors})))
            time = time or utc_now()
            conn.execute(sign_offs.insert().values(
                register_id=register_id, revision=eff.revision.number, hash=eff.hash, role=role, name=name,
                decision=decision, statement=statement, despite_errors=despite_errors, created=time))
            return checks.SignOff(role, name, decision, eff.hash, eff.revision.number, format_time(time), statement,
                                  despite_errors, eff.revision.template_number)

    def retire(self, register_id: str, *, by: str, reason: str, time: datetime | None = None) -> RegisterInfo:
        """Retire a register: it stays, with its history and sign-offs, but takes no changes and leaves the lists."""
        with self._write() as conn:
            info = self.info(register_id, conn)
            if info.retired:
                raise StoreError("dpia-retired", register=register_id)
            if info.kind == "template" and conn.execute(
                    sa.select(registers.c.id).where(registers.c.template_id == register_id,
                                                    registers.c.retired.is_(None)).limit(1)).first():
                raise StoreError("dpia-template-in-use", register=register_id)
            conn.execute(registers.update().where(registers.c.id == register_id)
                         .values(retired=time or utc_now(), retired_by=by, retired_reason=reason))
            return self.info(register_id, conn)

    # -- import (exchange.py reads and checks the file; this writes it, all or nothing) ------------------------

    def receive(self, document: dict[str, Any], *, author: str, reason: str, revision: Mapping[str, Any] | None = None,
                adoption: Mapping[str, Any] | None = None, signed: Sequence[Mapping[str, Any]] = ()) -> Received:
        """Take in one imported register in one transaction (see receive_all)."""
        return self.receive_all([Arrival(document["id"], document, author, reason, revision, adoption, signed)])[0]

    def receive_all(self, arrivals: Sequence[Arrival]) -> list[Received]:
        """Take in imported registers, all in one transaction: every one is stored or none is. A later file may
        build on an earlier one (a template's export, then its clinics'). A refusal names the file it is about.
        `revision` is the exported revision's metadata, kept when the register is new here and its content is
        exactly what the hash says."""
        with self._write() as conn:
            heads: dict[str, int] = {row.id: row.head for row in conn.execute(
                sa.select(registers.c.id, registers.c.head).where(
                    registers.c.id.in_([a.document["id"] for a in arrivals])))}
            out = []
            for arrival in arrivals:
                try:
                    got = self._receive(conn, arrival)
                    if got.new is None and got.current.number > heads.get(got.register_id, 0):
                        got = replace(got, revised_here=True)
                    out.append(got)
                except StoreError as exc:
                    exc.source = arrival.source
                    raise
                except model.RegisterError as exc:
                    raise model.RegisterError(arrival.source, exc.findings) from None
            return out

    def _receive(self, conn: Connection, arrival: Arrival) -> Received:
        document, revision = arrival.document, arrival.revision
        exists = conn.execute(sa.select(registers.c.id).where(registers.c.id == document["id"])).first()
        intact = revision is not None and revision["hash"] == model.register_hash(document)
        keep = intact and not exists and revision is not None
        meta: dict[str, Any] = (
            {"author": revision["author"], "reason": revision["reason"], "time": parse_time(revision["time"]),
             "number": revision["number"]} if keep and revision is not None else
            {"author": arrival.author, "reason": arrival.reason, "time": utc_now(), "number": None})
        if document["kind"] == "clinic":
            new = self._receive_clinic(conn, document, arrival.adoption, bool(exists), meta)
        else:
            new = self._save(conn, document, author=meta["author"], reason=meta["reason"], time=meta["time"],
                             number=meta["number"])
        current = self.revision(document["id"], None, conn)
        # The file's sign-offs vouch for the file's revision only: one naming another revision, or the file's
        # revision when its content was edited after export, is not taken over (and counted, not dropped silently).
        vouched = revision["hash"] if intact and revision is not None else None
        added, passed = self._receive_sign_offs(conn, document["id"], arrival.signed, vouched)
        return Received(document["id"], new, current, added, passed)

    def _receive_clinic(self, conn: Connection, document: dict[str, Any], adoption: Mapping[str, Any] | None,
                        exists: bool, meta: Mapping[str, Any]) -> Revision | None:
        if adoption is None:
            raise StoreError("dpia-clinic-needs-template", register=document["id"])
        based_on = adoption["template_revision"]
        try:
            template = self.revision(adoption["template"], based_on["number"], conn)
        except StoreError:
            template = None
        if template is None or template.hash != based_on["hash"]:
            raise StoreError("dpia-template-revision-missing", template=adoption["template"],
                             number=based_on["number"], hash=based_on["hash"])
        # The file's delta if it still gives the file's register; else the register was edited: take it as it reads.
        clinic_delta = adoption["delta"] if delta.same(delta.apply(template.content, adoption["delta"]), document) \
            else delta.make(template.content, document)
        if exists:
            info = self.info(document["id"], conn)
            _writable(info, "clinic")
            if info.template_id != adoption["template"]:
                raise StoreError("dpia-other-template", register=info.id, template=info.template_id)
            return self._save_clinic_delta(conn, info, clinic_delta, author=meta["author"], reason=meta["reason"],
                                           time=meta["time"])
        target = delta.apply(template.content, clinic_delta)
        sor = document["id"].removeprefix("clinic-") if SOR.match(document["id"].removeprefix("clinic-")) else None
        rev = self._new_clinic(conn, document["id"], sor, template, target, author=meta["author"],
                               reason=meta["reason"], time=meta["time"], number=meta["number"] or 1)
        newest = self._template(conn, adoption["template"])
        if newest.number != template.number:  # the template has moved on here: the clinic follows it
            info = self.info(document["id"], conn)
            rev = self._next(conn, info, clinic_delta, newest, meta["author"], utc_now(),
                             f"template {newest.register_id} r{newest.number}: taken over on import")
        return rev

    def _receive_sign_offs(self, conn: Connection, register_id: str, signed: Sequence[Mapping[str, Any]],
                           vouched: str | None) -> tuple[int, int]:
        """(sign-offs added, sign-offs not taken over); those already here count as neither."""
        known = {row.hash: row.number for row in conn.execute(
            sa.select(revisions.c.hash, revisions.c.number).where(revisions.c.register_id == register_id))}
        have = {(s.role, s.name, s.time, s.revision) for s in self.sign_offs(register_id, conn)}
        added = passed = 0
        for s in signed:
            key = (s["role"], s["name"], s["time"], s["revision"])
            if key in have:
                continue
            if s["revision"] != vouched or s["revision"] not in known:
                passed += 1
                continue
            conn.execute(sign_offs.insert().values(
                register_id=register_id, revision=known[s["revision"]], hash=s["revision"], role=s["role"],
                name=s["name"], decision=s["decision"], statement=s.get("statement"),
                despite_errors=bool(s.get("despite_errors")), created=parse_time(s["time"])))
            have.add(key)  # the same sign-off twice in one file is stored once
            added += 1
        return added, passed

    # -- checking --------------------------------------------------------------------------------------------

    def check(self, register_id: str, today: date) -> tuple[Effective, list[Finding]]:
        return next(iter(self.check_many([register_id], today)))

    def check_many(self, register_ids: Sequence[str] | None, today: date) -> Iterator[tuple[Effective, list[Finding]]]:
        """Check registers (default: every register in force), reading each table once: the templates' revisions
        are shared by all their clinics, so 1,700 clinics cost one template plus 1,700 small deltas. A clinic's
        document here shares the template's parts: read it, do not change it."""
        with self.engine.connect() as conn:
            infos = self._infos(conn, register_ids)
            heads = self._heads(conn, [i.id for i in infos])
            signed = self._sign_offs_by_register(conn, [i.id for i in infos])
            templates = _TemplateCache(self, conn)
            for info in infos:
                rev = heads[info.id]
                yield self._check_one(info, rev, signed.get(info.id, []), templates, today)

    def _check_one(self, info: RegisterInfo, rev: Revision, signed: list[checks.SignOff], templates: _TemplateCache,
                   today: date) -> tuple[Effective, list[Finding]]:
        if info.kind == "clinic":
            assert info.template_id is not None and rev.template_number is not None
            template = templates.revision(info.template_id, rev.template_number)
            # Read-only from here on: the clinic's register shares the template's untouched parts.
            eff = Effective(info, rev, delta.apply(template.content, rev.content, share=True), template)
            problems = model.schema_problems_where(eff.document, rev.content)
        else:
            eff = Effective(info, rev, rev.content)
            problems = model.schema_problems(eff.document)
        state = self._state(info, rev, signed, templates)
        findings = checks.check(eff.document, today, state, problems)
        if model.register_hash(eff.document) != rev.hash:
            findings.insert(0, checks.finding("DPIA-HASH-MISMATCH", (), revision=rev.number, stored=rev.hash[:19],
                                              actual=model.register_hash(eff.document)[:19]))
        return eff, findings

    def _state(self, info: RegisterInfo, rev: Revision, signed: list[checks.SignOff],
               templates: _TemplateCache) -> checks.SignOffState:
        if info.kind != "clinic":
            return checks.SignOffState(rev.hash, rev.number, signed)
        assert info.template_id is not None and rev.template_number is not None
        decisions = [s for s in signed if s.role == "controller"]
        changes = 0
        if decisions and decisions[-1].template_revision not in (None, rev.template_number):
            changes = templates.changes(info.template_id, decisions[-1].template_revision, rev.template_number)
        return checks.SignOffState(rev.hash, rev.number, signed, rev.template_number, changes,
                                   templates.dpo_signed(info.template_id, rev.template_number))

    def _infos(self, conn: Connection, register_ids: Sequence[str] | None) -> list[RegisterInfo]:
        if register_ids is None:
            query = sa.select(registers).where(registers.c.retired.is_(None)).order_by(registers.c.id)
            return [RegisterInfo(**row._mapping) for row in conn.execute(query)]
        return [self.info(register_id, conn) for register_id in register_ids]

    def _heads(self, conn: Connection, ids: list[str]) -> dict[str, Revision]:
        query = (sa.select(revisions).join(registers, sa.and_(registers.c.id == revisions.c.register_id,
                                                              registers.c.head == revisions.c.number)))
        if len(ids) < 500:
            query = query.where(revisions.c.register_id.in_(ids))
        wanted = set(ids)
        return {row.register_id: _revision(row) for row in conn.execute(query) if row.register_id in wanted}

    def _sign_offs_by_register(self, conn: Connection, ids: list[str]) -> dict[str, list[checks.SignOff]]:
        query = (sa.select(sign_offs, revisions.c.template_number)
                 .join(revisions, sa.and_(revisions.c.register_id == sign_offs.c.register_id,
                                          revisions.c.number == sign_offs.c.revision))
                 .order_by(sign_offs.c.created, sign_offs.c.id))
        if len(ids) < 500:
            query = query.where(sign_offs.c.register_id.in_(ids))
        out: dict[str, list[checks.SignOff]] = {}
        for row in conn.execute(query):
            out.setdefault(row.register_id, []).append(_sign_off(row))
        return out


class _TemplateCache:
    """Template revisions, their DPO sign-offs and the changes between them, read once per check run."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self.store, self.conn = store, conn
        self._revisions: dict[tuple[str, int], Revision] = {}
        self._changes: dict[tuple[str, int, int], int] = {}
        self._signed: dict[str, set[int]] = {}

    def revision(self, template_id: str, number: int) -> Revision:
        key = (template_id, number)
        if key not in self._revisions:
            self._revisions[key] = self.store.revision(template_id, number, self.conn)
        return self._revisions[key]

    def changes(self, template_id: str, old: int, new: int) -> int:
        key = (template_id, old, new)
        if key not in self._changes:
            self._changes[key] = len(diff(self.revision(template_id, old).content,
                                          self.revision(template_id, new).content))
        return self._changes[key]

    def dpo_signed(self, template_id: str, number: int) -> bool:
        if template_id not in self._signed:
            self._signed[template_id] = {s.revision_number for s in self.store.sign_offs(template_id, self.conn)
                                         if s.role == "dpo" and s.decision != "reject"}
        return number in self._signed[template_id]


def _revision(row: Any) -> Revision:
    return Revision(row.register_id, row.number, row.hash, json.loads(row.content), row.template_number, row.author,
                    row.created, row.reason)


def _sign_off(row: Any) -> checks.SignOff:
    return checks.SignOff(row.role, row.name, row.decision, row.hash, row.revision, format_time(row.created),
                          row.statement, bool(row.despite_errors), row.template_number)


def _number(ref: str | int | None) -> int | None:
    if isinstance(ref, int):
        return ref
    if isinstance(ref, str) and re.fullmatch(r"r?[0-9]{1,9}", ref) and not re.fullmatch(r"[0-9]{4,}", ref):
        return int(ref.removeprefix("r"))
    return None


def _writable(info: RegisterInfo, kind: str) -> None:
    if info.retired:
        raise StoreError("dpia-retired", register=info.id)
    if info.kind != kind:
        raise StoreError("dpia-kind-changed", register=info.id, was=info.kind, now=kind)


def _nothing_dropped(old: Any, new: Any, prefix: tuple[str, ...] = ()) -> None:
    """Nothing is deleted from a register, only retired: an item (with an id) may not disappear between revisions."""
    gone = removed_items(old, new)
    if gone:
        where = [c.where or c.path for c in gone[:5]]
        if prefix:
            where = [f"{prefix[0]}{w if w.startswith(('/', '[')) else '/' + w}" for w in where]
        raise StoreError("dpia-item-removed", where=", ".join(where), count=len(gone))
