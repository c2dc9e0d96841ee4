"""A care package's content as installed in the FHIR package cache: Questionnaires, rule sets (Library),
code systems, found by canonical (url|version) across the installed packages."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kroniker.validators.findings import PackageRef
from kroniker.validators.packages import InstalledPackage, PackageCache, version_key


class ContentError(Exception):
    """Content a package promises cannot be read (a damaged rule set); the message says what and where."""


@dataclass(frozen=True)
class Found:
    """A resource from an installed package, and which package (for reports)."""

    resource: dict[str, Any]
    package: PackageRef

    @property
    def canonical(self) -> str:
        return f"{self.resource.get('url')}|{self.resource.get('version')}"


class Content:
    """Resolves canonicals to resources of any type in a package cache; reads each package's index once."""

    def __init__(self, cache: PackageCache) -> None:
        self.cache = cache
        self._index: dict[str, list[tuple[str, InstalledPackage, Path]]] | None = None
        self._loaded: dict[Path, dict[str, Any]] = {}
        self._types: dict[str, set[str]] = {}  # resourceType → urls
        self.memo: dict[Any, Any] = {}  # what the clinical modules compile from the content (FHIRPath, rules)

    def _entries(self) -> dict[str, list[tuple[str, InstalledPackage, Path]]]:
        if self._index is None:
            index: dict[str, list[tuple[str, InstalledPackage, Path]]] = {}
            for pkg in self.cache.installed():
                for entry in _package_index(pkg):
                    self._types.setdefault(str(entry.get("resourceType")), set()).add(entry["url"])
                    index.setdefault(entry["url"], []).append((str(entry.get("version") or pkg.version), pkg,
                                                               pkg.path / "package" / entry["filename"]))
            self._index = index
        return self._index

    def versions(self, url: str) -> list[str]:
        return sorted({v for v, _, _ in self._entries().get(url, [])}, key=version_key)

    def find(self, canonical: str) -> Found | None:
        """The resource for `url|version` (exactly that version), or for `url` (the highest version)."""
        url, _, version = canonical.partition("|")
        candidates = self._entries().get(url, [])
        if version:
            candidates = [c for c in candidates if c[0] == version]
        if not candidates:
            return None
        _, pkg, path = max(candidates, key=lambda c: version_key(c[0]))
        res = self._loaded.get(path)
        if res is None:
            try:
                res = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if not isinstance(res, dict):
                return None
            self._loaded[path] = res
        return Found(res, pkg.ref)

    def rule_set_for(self, questionnaire: str) -> Found | None:
        """The rule set (a logic Library) that depends on this Questionnaire (`url|version` or `url`)."""
        url = questionnaire.split("|", 1)[0]
        best: Found | None = None
        self._entries()
        for lib_url in sorted(self._types.get("Library", ())):
            found = self.find(lib_url)
            if found is None or found.resource.get("resourceType") != "Library":
                continue
            deps = [str(r.get("resource", "")).split("|", 1)[0] for r in found.resource.get("relatedArtifact") or []
                    if isinstance(r, dict) and r.get("type") == "depends-on"]
            if url in deps and (best is None or version_key(str(found.resource.get("version"))) >
                                version_key(str(best.resource.get("version")))):
                best = found
        return best


def _package_index(pkg: InstalledPackage) -> list[dict[str, Any]]:
    folder = pkg.path / "package"
    try:
        files = json.loads((folder / ".index.json").read_text(encoding="utf-8")).get("files", [])
        return [f for f in files if isinstance(f, dict) and isinstance(f.get("url"), str)
                and isinstance(f.get("filename"), str) and "/" not in f["filename"]]
    except (OSError, ValueError, AttributeError):
        pass
    out = []
    for file in sorted(folder.glob("*.json")):
        try:
            res = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(res, dict) and isinstance(res.get("url"), str) and res.get("resourceType"):
            out.append({"filename": file.name, "url": res["url"], "version": res.get("version"),
                        "resourceType": res["resourceType"]})
    return out


def attachment_json(resource: dict[str, Any], content_type: str = "application/json") -> Any:
    """The first embedded attachment of this content type, parsed as JSON (a Library's rule set)."""
    for att in resource.get("content") or []:
        if isinstance(att, dict) and att.get("contentType") == content_type and isinstance(att.get("data"), str):
            try:
                return json.loads(base64.b64decode(att["data"], validate=True))
            except (ValueError, TypeError) as exc:
                raise ContentError(f"{resource.get('url')}|{resource.get('version')}: its {content_type} "
                                   f"content cannot be read ({exc})") from None
    raise ContentError(f"{resource.get('url')}|{resource.get('version')}: no embedded {content_type} content")
