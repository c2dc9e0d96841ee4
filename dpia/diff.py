"""The difference between two revisions of a register, as JSON Pointer paths.

Items of keyed lists (lists of objects with ids: organisations, activities, agreements, risks, measures, …) are
matched by id, so adding an organisation shows as one addition, not as every later organisation changed. Every
change names its place twice: as a JSON Pointer (RFC 6901) into the newer revision (into the older one for a
removal), and by ids for a reader (`activities[diagnosis-card]/record/purposes/0`).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kroniker.dpia.delta import keyed
from kroniker.dpia.model import pointer

ADD, REMOVE, REPLACE, REORDER = "add", "remove", "replace", "reorder"
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    op: str  # add | remove | replace | reorder
    path: str  # JSON Pointer: into the newer revision, into the older one for a removal
    where: str  # the same place by ids, for people
    old: Any = None
    new: Any = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "path": self.path, "where": self.where}
        if self.op in (REMOVE, REPLACE, REORDER):
            d["old"] = self.old
        if self.op in (ADD, REPLACE, REORDER):
            d["new"] = self.new
        return d


def diff(old: Any, new: Any) -> list[Change]:
    """Every change from old to new, in document order."""
    return list(_walk(old, new, (), ()))


def _walk(old: Any, new: Any, path: tuple[str | int, ...], where: tuple[str, ...]) -> Iterator[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        yield from _walk_object(old, new, path, where)
    elif keyed(old) and keyed(new):
        yield from _walk_keyed(old, new, path, where)
    elif isinstance(old, list) and isinstance(new, list):
        yield from _walk_list(old, new, path, where)
    elif old != new or type(old) is not type(new):
        yield Change(REPLACE, pointer(path), _where(where), old, new)


def _walk_object(old: dict[str, Any], new: dict[str, Any], path: tuple[str | int, ...],
                 where: tuple[str, ...]) -> Iterator[Change]:
    for key in sorted(set(old) | set(new)):
        sub, sub_where = (*path, key), (*where, key)
        if key not in old:
            yield Change(ADD, pointer(sub), _where(sub_where), new=new[key])
        elif key not in new:
            yield Change(REMOVE, pointer(sub), _where(sub_where), old=old[key])
        else:
            yield from _walk(old[key], new[key], sub, sub_where)


def _walk_keyed(old: list[dict[str, Any]], new: list[dict[str, Any]], path: tuple[str | int, ...],
                where: tuple[str, ...]) -> Iterator[Change]:
    old_at = {item["id"]: i for i, item in enumerate(old)}
    new_ids = {item["id"] for item in new}
    name = where[-1] if where else ""
    head = where[:-1]
    for j, item in enumerate(new):
        item_where = (*head, f"{name}[{item['id']}]")
        if item["id"] not in old_at:
            yield Change(ADD, pointer((*path, j)), _where(item_where), new=item)
        else:
            yield from _walk(old[old_at[item["id"]]], item, (*path, j), item_where)
    for item in old:
        if item["id"] not in new_ids:
            yield Change(REMOVE, pointer((*path, old_at[item["id"]])), _where((*head, f"{name}[{item['id']}]")),
                         old=item)
    kept_old = [item["id"] for item in old if item["id"] in new_ids]
    kept_new = [item["id"] for item in new if item["id"] in old_at]
    if kept_old != kept_new:
        yield Change(REORDER, pointer(path), _where(where), kept_old, kept_new)


def _walk_list(old: list[Any], new: list[Any], path: tuple[str | int, ...], where: tuple[str, ...]) -> Iterator[Change]:
    def key(v: Any) -> str:
        return json.dumps(v, sort_keys=True)

    matcher = difflib.SequenceMatcher(a=[key(v) for v in old], b=[key(v) for v in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(common):  # pairs changed in place
            yield from _walk(old[i1 + k], new[j1 + k], (*path, j1 + k), (*where, str(j1 + k)))
        for j in range(j1 + common, j2):
            yield Change(ADD, pointer((*path, j)), _where((*where, str(j))), new=new[j])
        for i in range(i1 + common, i2):
            yield Change(REMOVE, pointer((*path, i)), _where((*where, str(i))), old=old[i])


def _where(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def removed_items(old: Any, new: Any) -> list[Change]:
    """The items of keyed lists that are gone in new (the store refuses them: retire an item, never drop it)."""
    return [c for c in diff(old, new) if c.op == REMOVE and _is_keyed_items(c.old)]


def _is_keyed_items(value: Any) -> bool:
    if isinstance(value, dict):
        return "id" in value or any(_is_keyed_items(v) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict) and "id" in v for v in value) or any(_is_keyed_items(v) for v in value)
    return False


def render(changes: list[Change], lang: str = "en") -> str:
    """The changes for people: one block per change."""
    from kroniker.validators import messages

    if not changes:
        return messages.text("dpia-diff-none", lang)
    marks = {ADD: "+", REMOVE: "-", REPLACE: "~", REORDER: "↕"}
    lines = []
    for c in changes:
        where = f"   ({c.where})" if c.where and c.where != c.path.lstrip("/") else ""
        lines.append(f"{marks[c.op]} {c.path or '/'}{where}")
        if c.op in (REMOVE, REPLACE, REORDER):
            lines.append(f"    - {_short(c.old)}")
        if c.op in (ADD, REPLACE, REORDER):
            lines.append(f"    + {_short(c.new)}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."
