"""Snapshots from differentials: a profile that ships only its differential gets its snapshot from its base's,
as the HL7 tools make it (FHIR R4 "Profiling": the differential states what changes, the snapshot everything).

The walk goes through the base snapshot in order; each differential element is applied to the element with the
same id (its path, with `:sliceName` on sliced segments). What the differential states replaces the base's
(cardinality, fixed[x]/pattern[x], binding, type, slicing, mustSupport, texts); constraints and conditions are
added to the base's. A differential element with an id the base does not have is a new slice (`…code:package`),
or a child of one: it starts as a copy of the element it slices (same id without the slice), without that
element's slicing, and goes after the sliced element, its children and its earlier slices.

What is refused, with a `SnapshotError` naming the element: an element neither the base nor a slice of it has
(kroniker does not expand a datatype the base snapshot leaves folded); a minimum below, or a maximum above,
the base's (a profile may only narrow); a base with no snapshot and no differential of its own to build one
from; bases nested deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 16

# Differential keys that replace the base's; everything else of the base is kept.
_REPLACED = ("short", "definition", "comment", "requirements", "alias", "min", "max", "type", "binding",
             "slicing", "mustSupport", "isModifier", "isModifierReason", "isSummary", "maxLength", "meaningWhenMissing",
             "sliceName", "label", "code", "orderMeaning", "example", "minValueInteger", "maxValueInteger",
             "minValueDecimal", "maxValueDecimal", "minValueDate", "maxValueDate", "minValueDateTime",
             "maxValueDateTime", "minValueQuantity", "maxValueQuantity")
_ADDED = ("constraint", "condition")


class SnapshotError(ValueError):
    """A differential that cannot be applied to its base; the message names the element and why."""


Resolve = Callable[[str], "dict[str, Any] | None"]


def with_snapshot(sd: dict[str, Any], resolve: Resolve, _depth: int = 0) -> dict[str, Any]:
    """A copy of `sd` with `snapshot` generated from its base's snapshot and its differential.

    `resolve` finds the base StructureDefinition by canonical; a base that has no snapshot of its own gets one
    the same way first.
    """
    if sd.get("snapshot"):
        return sd
    url = sd.get("url", "?")
    if _depth > MAX_DEPTH:
        raise SnapshotError(f"{url}: bases nested more than {MAX_DEPTH} deep")
    diff = (sd.get("differential") or {}).get("element")
    base_url = sd.get("baseDefinition")
    if not isinstance(diff, list) or not isinstance(base_url, str):
        raise SnapshotError(f"{url}: neither a snapshot nor a differential with a baseDefinition")
    base = resolve(base_url)
    if base is None:
        raise SnapshotError(f"{url}: the base {base_url} is not in the package set")
    base = with_snapshot(base, resolve, _depth + 1)
    out = dict(sd)
    out["snapshot"] = {"element": apply(base["snapshot"]["element"], diff, url)}
    return out


def apply(base: list[dict[str, Any]], differential: list[dict[str, Any]], url: str = "?") -> list[dict[str, Any]]:
    """The snapshot elements: `base` (a snapshot's elements) with `differential` applied, in base order."""
    elements = [copy.deepcopy(e) for e in base]
    for d in differential:
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            raise SnapshotError(f"{url}: a differential element without a path")
        eid = element_id(d)
        i = _index_of(elements, eid)
        if i is None:
            i = _new_slice(elements, eid, url)
        _merge(elements[i], d, url)
    return elements


def element_id(e: dict[str, Any]) -> str:
    """An element's id; when it has none, its path with its sliceName on the last segment (R4 id rules)."""
    eid = e.get("id")
    if isinstance(eid, str) and eid:
        return eid
    path = str(e["path"])
    name = e.get("sliceName")
    return f"{path}:{name}" if isinstance(name, str) and name else path


def _index_of(elements: list[dict[str, Any]], eid: str) -> int | None:
    for i, e in enumerate(elements):
        if element_id(e) == eid:
            return i
    return None


def _unsliced(eid: str) -> str:
    """`A.b:s.c:t.d` → `A.b.c.d`: the element of the base a slice (or a slice's child) copies."""
    return ".".join(part.split(":", 1)[0] for part in eid.split("."))


def _new_slice(elements: list[dict[str, Any]], eid: str, url: str) -> int:
    head, _, last = eid.rpartition(".")
    if ":" in last:  # a new slice of `head.name`: a copy of the element it slices
        name, slice_name = last.split(":", 1)
        template_id: str = f"{head}.{name}" if head else name
        anchor: str = template_id
    else:  # a child of a new slice: a copy of the same child of the sliced element
        template_id, slice_name, anchor = _unsliced(eid), None, head
    t = _index_of(elements, template_id)
    if t is None or _index_of(elements, anchor) is None:
        raise SnapshotError(f"{url}: {eid} is not an element of the base (nor a slice of one)")
    new = copy.deepcopy(elements[t])
    new["id"] = eid
    new.pop("slicing", None)
    if slice_name is not None:
        new["sliceName"] = slice_name
    else:
        new.pop("sliceName", None)
    # After the anchor and everything under it (children, earlier slices and their children).
    pos = _index_of(elements, anchor)
    assert pos is not None
    end = pos + 1
    while end < len(elements):
        other = element_id(elements[end])
        if other.startswith((anchor + ".", anchor + ":")):
            end += 1
        else:
            break
    elements.insert(end, new)
    return end


def _merge(target: dict[str, Any], d: dict[str, Any], url: str) -> None:
    eid = element_id(target)
    base_min, base_max = target.get("min", 0), target.get("max", "*")
    if "min" in d and isinstance(base_min, int) and isinstance(d["min"], int) and d["min"] < base_min \
            and not d.get("sliceName") and ":" not in eid.rsplit(".", 1)[-1]:
        raise SnapshotError(f"{url}: {eid} min {d['min']} is below the base's {base_min}")
    if "max" in d and _max(d["max"]) > _max(base_max):
        raise SnapshotError(f"{url}: {eid} max {d['max']} is above the base's {base_max}")
    for key in list(d):
        if key in ("id", "path", "extension"):
            continue
        if key.startswith(("fixed", "pattern", "defaultValue")) or key in _REPLACED:
            if key.startswith(("fixed", "pattern")):  # one fixed or pattern value: the differential's
                for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                    del target[old]
            target[key] = copy.deepcopy(d[key])
        elif key in _ADDED:
            have = target.setdefault(key, [])
            keys = {c.get("key") if isinstance(c, dict) else c for c in have}
            for c in d[key]:
                if (c.get("key") if isinstance(c, dict) else c) not in keys:
                    have.append(copy.deepcopy(c))
    if isinstance(d.get("extension"), list):
        target["extension"] = [*target.get("extension", []), *copy.deepcopy(d["extension"])]


def _max(value: Any) -> float:
    if value == "*":
        return float("inf")
    try:
        return int(value)
    except (TypeError, ValueError):
        return float("inf")
