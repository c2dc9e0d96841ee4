"""References inside a FHIR Bundle, resolved by FHIR's rules (R4 Bundle, "Resolving references in Bundles").

The one resolver of kroniker: the engine checks references with it, and the reference server derives the
patient and author it stores through it, so what was validated is what is filed.

The rules, as R4 states them (http://hl7.org/fhir/R4/bundle.html#references):
- a relative reference `Type/id` (or `Type/id/_history/v`) is made absolute against the RESTful base of the
  fullUrl of the entry that holds it, then looked up by fullUrl; from an entry whose fullUrl is not RESTful
  (`urn:uuid:…`, `urn:oid:…`) a relative reference has no defined meaning and resolves to nothing;
- an absolute reference (`http…`, `urn:uuid:…`, `urn:oid:…`) is looked up by fullUrl as written; a versioned
  RESTful one (`…/Type/id/_history/v`) matches the entry of `…/Type/id` whose `meta.versionId` is `v` (or that
  has none);
- `#id` is a contained resource of the referring resource (the engine handles those).
Nothing resolves by type and id alone: two entries may hold resources of the same type and id under different
bases, and only the fullUrl tells them apart. In a document that ambiguity is refused (DOC-ENTRY-ID-UNIQUE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kroniker.validators.findings import JsonPath

_ID = r"[A-Za-z0-9\-.]{1,64}"
_TYPE = r"[A-Z][A-Za-z]{1,63}"
# FHIR R4's RESTful URL pattern (http://hl7.org/fhir/R4/references.html#regex), with the resource type
# left open: a type that does not exist fails elsewhere, as an unknown resource type.
RESTFUL = re.compile(rf"^(?P<base>https?://[^\s/?#]+(?:/[^\s/?#]+)*?)/(?P<type>{_TYPE})/(?P<id>{_ID})"
                     rf"(?:/_history/(?P<version>{_ID}))?$")
RELATIVE = re.compile(rf"^(?P<type>{_TYPE})/(?P<id>{_ID})(?:/_history/(?P<version>{_ID}))?$")
UUID_URN = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
OID_URN = re.compile(r"^urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+$")


@dataclass
class Entry:
    """A resource in the document and where it sits."""

    index: int | None  # None for the Bundle itself (and for contained resources)
    resource: dict[str, Any]
    path: JsonPath
    loc: str
    full_url: str | None = None


def entries_of(bundle: dict[str, Any]) -> list[Entry]:
    """The Bundle itself, then every entry that holds a resource, in order."""
    rtype = bundle.get("resourceType")
    out = [Entry(None, bundle, (), rtype if isinstance(rtype, str) and rtype else "(document)")]
    raw = bundle.get("entry")
    if rtype == "Bundle" and isinstance(raw, list):
        for i, e in enumerate(raw):
            if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                fu = e.get("fullUrl")
                out.append(Entry(i, e["resource"], ("entry", i, "resource"), f"Bundle.entry[{i}].resource",
                                 fu if isinstance(fu, str) else None))
    return out


def full_url_problem(full_url: str) -> str | None:
    """Why a fullUrl is not one FHIR allows (an absolute URL: RESTful, `urn:uuid:` or `urn:oid:`), or None."""
    restful = RESTFUL.match(full_url)
    if restful is not None and restful["version"]:
        return "versioned"
    if restful or UUID_URN.match(full_url) or OID_URN.match(full_url):
        return None
    if full_url.startswith("urn:uuid:"):
        return "uuid"
    if full_url.startswith("urn:oid:"):
        return "oid"
    if re.match(r"^[a-z][a-z0-9+.\-]*:", full_url) is None:
        return "relative"
    return None  # another absolute URI: FHIR allows it, though nothing relative can resolve against it


def restful_base(full_url: str | None) -> str | None:
    """The service base of a RESTful fullUrl (`https://x/fhir/Patient/1` → `https://x/fhir`), else None."""
    m = RESTFUL.match(full_url) if full_url else None
    return m["base"] if m else None


class BundleIndex:
    """The entries of a Bundle by fullUrl, and FHIR's rules for finding the one a reference means."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self._by_full_url: dict[str, Entry] = {}
        for e in entries:
            if e.index is not None and e.full_url:
                # With a duplicate fullUrl (DOC-ENTRY-FULLURL-UNIQUE) the first entry answers, as everywhere.
                self._by_full_url.setdefault(e.full_url, e)

    @classmethod
    def of(cls, bundle: dict[str, Any]) -> BundleIndex:
        return cls(entries_of(bundle))

    def resolve(self, ref: Any, source: Entry) -> Entry | None:
        """The entry a literal reference written in `source` points to, or None (contained `#id` excepted)."""
        if isinstance(ref, dict):
            ref = ref.get("reference")
        if not isinstance(ref, str) or not ref or ref.startswith("#"):
            return None
        rel = RELATIVE.match(ref)
        if rel is not None:
            base = restful_base(source.full_url)
            if base is None:
                return None  # no defined meaning (R4 Bundle, rule 1)
            return self._restful(f"{base}/{rel['type']}/{rel['id']}", rel["version"])
        hit = self._by_full_url.get(ref)
        if hit is not None:
            return hit
        m = RESTFUL.match(ref)
        if m is not None and m["version"]:
            return self._restful(f"{m['base']}/{m['type']}/{m['id']}", m["version"])
        return None

    def _restful(self, url: str, version: str | None) -> Entry | None:
        hit = self._by_full_url.get(url)
        if hit is None or version is None:
            return hit
        meta = hit.resource.get("meta")
        have = meta.get("versionId") if isinstance(meta, dict) else None
        return hit if have is None or have == version else None

    def duplicate_ids(self) -> list[tuple[Entry, Entry]]:
        """(later entry, first entry) for every entry whose resource type and id an earlier entry has too."""
        first: dict[tuple[str, str], Entry] = {}
        out: list[tuple[Entry, Entry]] = []
        for e in self.entries:
            if e.index is None:
                continue
            rt, rid = e.resource.get("resourceType"), e.resource.get("id")
            if isinstance(rt, str) and isinstance(rid, str):
                seen = first.setdefault((rt, rid), e)
                if seen is not e:
                    out.append((e, seen))
        return out
