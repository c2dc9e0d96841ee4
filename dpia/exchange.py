"""Import and export of registers as JSON data, in the format `schema/register.schema.json` documents.

An export holds one revision: the register as it reads (for a clinic, with the template applied), the revision's
number, hash, author, time and reason, for a clinic the template revision and the clinic's delta, and the
sign-offs that cover exactly that revision. Keys are sorted and indented the same way every time, so export →
import → export gives the same bytes, and a register kept in git changes by small diffs.

Import takes an export or a bare register (as written by hand or kept in git). It is validated against the schema
first; nothing is written unless the whole file can be taken in. An export whose content still matches its hash is
the same revision: a register new here keeps its number, author, time and reason. Anything else (an edited file, a
bare register) becomes a new revision by the person importing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kroniker.dpia import model
from kroniker.dpia.model import RegisterError
from kroniker.dpia.store import Revision, Store, format_time


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


def read(data: str | bytes, source: str = "<input>") -> Incoming:
    """Parse and validate an export or a bare register; RegisterError (with every problem) when it cannot be taken."""
    document = model.parse(data, source)
    if model.is_export(document):
        model.require_valid(document, source, "export")
        register = document["register"]
        if register["kind"] == "clinic" and "adoption" not in document:
            raise RegisterError(source, ["/adoption: a clinic's register names the template revision it adopts"])
        if register["kind"] != "clinic" and "adoption" in document:
            raise RegisterError(source, [f"/adoption: only a clinic's register adopts a template, this is a "
                                         f"{register['kind']}"])
        return Incoming(source, register, document["revision"], document.get("adoption"),
                        tuple(document.get("sign_offs", ())))
    model.require_valid(document, source)
    if document["kind"] == "clinic":
        raise RegisterError(source, ["/kind: a clinic's register is imported from an export (it names its template "
                                     "revision), or made with `kroniker dpia adopt`"])
    return Incoming(source, document)


@dataclass(frozen=True, slots=True)
class Imported:
    register_id: str
    new: Revision | None  # None: the store already had this content
    current: Revision
    sign_offs: int


def take_in(store: Store, incoming: Incoming, *, author: str, reason: str) -> Imported:
    new, current, added = store.receive(incoming.register, author=author, reason=reason,
                                        revision=incoming.revision if incoming.intact else None,
                                        adoption=incoming.adoption, signed=incoming.sign_offs)
    return Imported(incoming.register["id"], new, current, added)
