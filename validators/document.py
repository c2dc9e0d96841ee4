"""The FHIR document rules: a Bundle of type document, Composition first, references that resolve
inside it, every entry reachable from the Composition, unique fullUrls that match their resources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kroniker.validators.engine import Walk
from kroniker.validators.findings import Finding, Severity, finding
from kroniker.validators.references import entries_of, full_url_problem

__all__ = ["document_rules", "entries_of"]


def document_rules(walk: Walk, bundle: dict[str, Any], present: set[tuple[str, str]]) -> Iterator[Finding]:
    """The document rules, each skipped where a profile already reported the same rule at the same place."""
    def new(rule: str, loc: str) -> bool:
        return (rule, loc) not in present and (rule, "*") not in present

    if bundle.get("resourceType") != "Bundle":
        yield finding(Severity.ERROR, "DOC-BUNDLE-TYPE", bundle.get("resourceType") or "(document)", (),
                      message_key="not-a-bundle", found=bundle.get("resourceType"))
        return
    if bundle.get("type") != "document" and new("DOC-BUNDLE-TYPE", "Bundle.type"):
        yield finding(Severity.ERROR, "DOC-BUNDLE-TYPE", "Bundle.type", ("type",), expected="document",
                      found=bundle.get("type"))
    entries = bundle.get("entry")
    raw: list[Any] = entries if isinstance(entries, list) else []
    first = raw[0] if raw and isinstance(raw[0], dict) else None
    first_res = first.get("resource") if first else None
    if not (isinstance(first_res, dict) and first_res.get("resourceType") == "Composition") \
            and new("DOC-FIRST-COMPOSITION", "Bundle"):
        yield finding(Severity.ERROR, "DOC-FIRST-COMPOSITION", "Bundle.entry[0]" if raw else "Bundle.entry",
                      ("entry", 0) if raw else ("entry",),
                      found=first_res.get("resourceType") if isinstance(first_res, dict) else None)
    seen_urls: dict[str, int] = {}
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            continue
        loc = f"Bundle.entry[{i}]"
        res = e.get("resource")
        fu = e.get("fullUrl")
        if res is None and new("DOC-ENTRY-RESOURCE", f"{loc}.resource"):
            yield finding(Severity.ERROR, "DOC-ENTRY-RESOURCE", f"{loc}.resource", ("entry", i, "resource"))
        if not isinstance(fu, str):
            if new("DOC-ENTRY-FULLURL", f"{loc}.fullUrl"):
                yield finding(Severity.ERROR, "DOC-ENTRY-FULLURL", f"{loc}.fullUrl", ("entry", i, "fullUrl"))
            continue
        if fu in seen_urls and new("DOC-ENTRY-FULLURL-UNIQUE", "Bundle"):
            yield finding(Severity.ERROR, "DOC-ENTRY-FULLURL-UNIQUE", f"{loc}.fullUrl", ("entry", i, "fullUrl"),
                          found=fu, other=f"Bundle.entry[{seen_urls[fu]}]")
        seen_urls.setdefault(fu, i)
        problem = full_url_problem(fu)
        if problem is not None and new("DOC-ENTRY-FULLURL", f"{loc}.fullUrl"):
            yield finding(Severity.ERROR, "DOC-ENTRY-FULLURL", f"{loc}.fullUrl", ("entry", i, "fullUrl"),
                          message_key=f"fullurl-{problem}", found=fu)
        if isinstance(res, dict):
            rtype, rid = res.get("resourceType"), res.get("id")
            if isinstance(rid, str) and isinstance(rtype, str) and \
                    not (fu == f"urn:uuid:{rid}" or fu.endswith(f"/{rtype}/{rid}")):
                yield finding(Severity.ERROR, "DOC-ENTRY-FULLURL-ID", f"{loc}.fullUrl", ("entry", i, "fullUrl"),
                              found=fu, expected=f"…/{rtype}/{rid} | urn:uuid:{rid}")
    for later, earlier in walk.index.duplicate_ids():
        yield finding(Severity.ERROR, "DOC-ENTRY-ID-UNIQUE", later.loc, later.path,
                      found=f"{later.resource['resourceType']}/{later.resource['id']}", other=earlier.loc)
    yield from _references(walk)
    yield from _reachability(walk)


def _references(walk: Walk) -> Iterator[Finding]:
    seen: set[tuple[Any, ...]] = set()
    for r in walk.references:
        if r.target is not None or r.reference.startswith("#") or r.path in seen:
            continue
        seen.add(r.path)
        yield finding(Severity.ERROR, "ref-unresolved", f"{r.loc}.reference", (*r.path, "reference"),
                      second="DOC-REF-RESOLVE", reference=r.reference)


def _reachability(walk: Walk) -> Iterator[Finding]:
    entries = [e for e in walk.entries if e.index is not None]
    comp = next((e for e in entries if e.resource.get("resourceType") == "Composition"), None)
    if comp is None:
        return
    edges: dict[int, set[int]] = {}
    for r in walk.references:
        if r.target is not None:
            edges.setdefault(id(r.source), set()).add(id(r.target))
    reached = {id(comp)}
    stack = [id(comp)]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in reached:
                reached.add(nxt)
                stack.append(nxt)
    for e in entries:
        if id(e) not in reached:
            yield finding(Severity.WARNING, "entry-unreferenced", e.loc, e.path,
                          found=f"{e.resource.get('resourceType')}/{e.resource.get('id')}")
