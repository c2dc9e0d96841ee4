"""Import and export of registers as JSON data, in the format `schema/register.schema.json` documents.

An export holds one revision: the register as it reads (for a clinic, with the template applied), the revision's
number, hash, author, time and reason, for a clinic the template revision and the clinic's delta, and the
sign-offs that cover exactly that revision. Keys are sorted and indented the same way every time, so export →
import → export gives the same bytes, and a register kept in git changes by small diffs.

Import takes exports or bare registers (as written by hand or kept in git). Each is read strictly and within limits
(`reading`) and validated against the schema first; then all are written in one transaction, so nothing is written
unless every file can be taken in. An export whose content still matches its hash is
the same revision: a register new here keeps its number, author, time and reason. Anything else (an edited file, a
bare register) becomes a new revision by the person importing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kroniker.dpia import model, reading
from kroniker.dpia.model import RegisterError
from kroniker.dpia.store import Arrival, Received, Store, format_time, parse_time
from kroniker.validators.findings import Finding


def export(store: Store, register_id: str, ref: str | int | None = None) -> dict[str, Any]:
    eff = store.effective(register_id, ref)
    rev = eff.revision
    out: dict[str, Any] = {
        "format": model.EXPORT_FORMAT,
        "register": eff.document,
        "revision": {"number": rev.number, "hash": rev.hash, "author": rev.author, "time": format_time(rev.time),
                     "reason": rev.reason},
    }
    if eff.template is not None:
        out["adoption"] = {"template": eff.template.register_id,
                           "template_revision": {"number": eff.template.number, "hash": eff.template.hash},
                           "delta": eff.delta}
    out["sign_offs"] = [_sign_off(s) for s in store.sign_offs(register_id) if s.revision == rev.hash]
    return out


def _sign_off(s: Any) -> dict[str, Any]:
    d = {"role": s.role, "name": s.name, "decision": s.decision, "time": s.time, "revision": s.revision}
    if s.statement:
        d["statement"] = s.statement
    if s.despite_errors:
        d["despite_errors"] = True
    return d


def export_text(store: Store, register_id: str, ref: str | int | None = None) -> str:
    return model.pretty(export(store, register_id, ref))


@dataclass(frozen=True, slots=True)
class Incoming:
    """A file read and validated, not yet written."""

    source: str
    register: dict[str, Any]
    revision: dict[str, Any] | None = None
    adoption: dict[str, Any] | None = None
    sign_offs: tuple[dict[str, Any], ...] = ()

    @property
    def intact(self) -> bool:
        """The file's content is exactly the revision its hash names."""
        return self.revision is not None and self.revision["hash"] == model.register_hash(self.register)


def read(data: str | bytes, source: str = "<input>", limits: reading.Limits | None = None) -> Incoming:
    """Parse and validate an export or a bare register; RegisterError (with every finding) when it cannot be taken."""
    document = reading.parse(data, source, limits)
    if model.is_export(document):
        model.require_valid(document, source, "export")
        register = document["register"]
        problems = _times(document)
        if register["kind"] == "clinic" and "adoption" not in document:
            problems.append(reading.finding("DPIA-ADOPTION-MISSING", ()))
        if register["kind"] != "clinic" and "adoption" in document:
            problems.append(reading.finding("DPIA-ADOPTION-UNEXPECTED", ("adoption",),
                                            kind=f"@dpia-kind-{register['kind']}"))
        if problems:
            raise RegisterError(source, problems)
        return Incoming(source, register, document["revision"], document.get("adoption"),
                        tuple(document.get("sign_offs", ())))
    model.require_valid(document, source)
    if document["kind"] == "clinic":
        raise RegisterError(source, [reading.finding("DPIA-CLINIC-BARE", ("kind",))])
    return Incoming(source, document)


def _times(document: dict[str, Any]) -> list[Finding]:
    """The schema's pattern lets 2026-02-30T25:00:00Z through; a time the store keeps must be a real one."""
    places: list[tuple[tuple[str | int, ...], str]] = [(("revision", "time"), document["revision"]["time"])]
    places += [(("sign_offs", i, "time"), s["time"]) for i, s in enumerate(document.get("sign_offs", ()))]
    out = []
    for path, value in places:
        try:
            parse_time(value)
        except ValueError:
            out.append(reading.finding("DPIA-TIME-INVALID", path, value=value))
    return out


def take_in(store: Store, incoming: Incoming, *, author: str, reason: str) -> Received:
    return take_in_all(store, [incoming], author=author, reason=lambda _: reason)[0]


def take_in_all(store: Store, incoming: Sequence[Incoming], *, author: str,
                reason: Callable[[Incoming], str]) -> list[Received]:
    """Store every file read, in one transaction: all of them or, on any refusal, none."""
    return store.receive_all([Arrival(item.source, item.register, author, reason(item),
                                      item.revision if item.intact else None, item.adoption, item.sign_offs)
                              for item in incoming])
