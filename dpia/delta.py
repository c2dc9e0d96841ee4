"""A clinic's deltas against a template: a JSON merge patch (RFC 7386) that addresses list items by their id.

Plain RFC 7386 replaces a list whole, so a clinic that added one organisation would freeze the template's list
and never see the template's later additions. Here a list whose items are all objects with distinct string ids (a
*keyed list*: organisations, activities, data categories, agreements, approvals, risks, measures, assets) is
patched like an object keyed by id:

    {"organisations": {"clinic": {"name": "Lægerne i Kronikergården"},      ← change fields of an item
                       "it-support": {"id": "it-support", "name": "…"}},   ← add an item (appended, in delta order)
     "dpia": {"codes_of_conduct": null}}                                   ← null removes, as in RFC 7386

Any other value in the delta (a string, a number, a list) replaces what the template has.

Order: in a keyed list the template's items keep the template's order and a clinic's own items follow in id
order. So the effective register does not depend on the order of keys in a delta (an export with sorted keys
re-imports to the same bytes), and a clinic never freezes a template list by adding to it. A clinic cannot reorder
the template's items; order carries no meaning in a register. `make(base, target)` gives the smallest delta, and
`apply(base, make(base, target))` equals target up to that order (`same` compares so).
"""

from __future__ import annotations

import copy
from typing import Any

Delta = dict[str, Any]


def keyed(value: Any) -> bool:
    """A list of objects that each carry a distinct string id."""
    if not isinstance(value, list):
        return False
    ids = [item.get("id") if isinstance(item, dict) else None for item in value]
    return all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids)


def apply(base: Any, delta: Any, *, share: bool = False) -> Any:
    """The base with the delta applied (neither is changed). With share=True the result reuses the parts of the base
    the delta does not touch instead of copying them: much faster, for a result that is only read."""
    if not isinstance(delta, dict):
        return delta if share else copy.deepcopy(delta)
    if keyed(base) and all(v is None or isinstance(v, dict) for v in delta.values()):
        return _apply_keyed(base, delta, share)
    result: dict[str, Any] = {}
    if isinstance(base, dict):
        result = dict(base) if share else copy.deepcopy(base)
    for key, value in delta.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value, share=share)
    return result


def _apply_keyed(base: list[dict[str, Any]], delta: dict[str, Any], share: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    present = set()
    for item in base:
        present.add(item["id"])
        if item["id"] not in delta:
            out.append(item if share else copy.deepcopy(item))
        elif delta[item["id"]] is not None:
            out.append(apply(item, delta[item["id"]], share=share))
    for item_id in sorted(delta):
        patch = delta[item_id]
        if item_id not in present and patch is not None:
            # A new item: its id is its key in the delta, whatever the patch says.
            out.append({**apply({}, patch, share=share), "id": item_id})
    return out


def make(base: Any, target: Any) -> Any:
    """The delta that turns base into target. Raises ValueError for what a merge patch cannot say (a null value in
    the target, or an object where the base has a keyed list); the register's schema rules both out."""
    delta = _make(base, target)
    if not same(apply(base, delta, share=True), target):
        raise ValueError("the change cannot be written as a merge patch (a null value, or a type changed)")
    return delta


def same(a: Any, b: Any) -> bool:
    """Equal up to the order of items in keyed lists."""
    return a == b or _unordered(a) == _unordered(b)


def _unordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unordered(v) for k, v in value.items()}
    if keyed(value):
        return sorted((_unordered(v) for v in value), key=lambda item: item["id"])
    if isinstance(value, list):
        return [_unordered(v) for v in value]
    return value


def _make(base: Any, target: Any) -> Any:
    if isinstance(base, dict) and isinstance(target, dict):
        delta: dict[str, Any] = {}
        for key, value in target.items():
            if key not in base:
                delta[key] = copy.deepcopy(value)
            elif base[key] != value:
                sub = _make(base[key], value)
                # An empty patch of an object or keyed list changes nothing (a keyed list only reordered).
                if sub != {} or not (isinstance(base[key], dict) or keyed(base[key])):
                    delta[key] = sub
        for key in base:
            if key not in target:
                delta[key] = None
        return delta
    if keyed(base) and keyed(target):
        return _make_keyed(base, target)
    return copy.deepcopy(target)


def _make_keyed(base: list[dict[str, Any]], target: list[dict[str, Any]]) -> Any:
    old = {item["id"]: item for item in base}
    new_ids = {item["id"] for item in target}
    delta: dict[str, Any] = {}
    for item in target:
        if item["id"] not in old:
            delta[item["id"]] = copy.deepcopy(item)
        elif old[item["id"]] != item:
            delta[item["id"]] = _make(old[item["id"]], item)
    for item_id in old:
        if item_id not in new_ids:
            delta[item_id] = None
    return delta


