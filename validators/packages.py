"""Reading the FHIR package cache (~/.fhir/packages, as the HL7 validator and SUSHI use it), and package sets.

Only the reading side lives here, in the engine: installing packages (archives, folders, registries over the
network) is the front's (kroniker/packages.py), and so is choosing the cache folder from the environment.

A *package set* is one standard at one version (e.g. medcom.fhir.dk.notes#1.0.0) with the dependency
versions that package pins; canonicals resolve inside that set only, so Shared Notes and ConditionList
never see each other's versions of MedCom Document, MedCom Core or DK Core.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from kroniker.validators.findings import PackageRef

# Where FHIR tools keep packages when nobody says otherwise (the front lets the environment say otherwise).
STANDARD_CACHE_DIR = Path("~/.fhir/packages")
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)#(?P<version>[A-Za-z0-9.+_-]+)$")
_CONFORMANCE_TYPES = {"StructureDefinition", "ValueSet", "CodeSystem"}

# Packages no machine here can have (see spec/findings.md); what stands in for each.
SUBSTITUTES = {
    "hl7.fhir.r4.core": "base-structure",
    "hl7.terminology.r4": "base-codes",
    "hl7.fhir.uv.extensions.r4": None,
    "ihe.iti.mhd": None,
    "hl7.fhir.uv.xver-r5.r4": None,
    "hl7.fhir.uv.phd": None,
    "hl7.fhir.uv.ipa": None,
}


def parse_spec(spec: str) -> tuple[str, str] | None:
    m = _SPEC.match(spec.strip())
    return (m["name"], m["version"]) if m else None


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key for package versions: numeric parts numerically, a pre-release below its release."""
    main, _, pre = version.partition("-")
    parts: list[Any] = []
    for p in main.split("."):
        parts.append((0, int(p)) if p.isdigit() else (1, p))
    return (tuple(parts), 0 if pre else 1, pre)


@dataclass(frozen=True)
class InstalledPackage:
    """One unpacked package in the cache."""

    name: str
    version: str
    path: Path  # the folder holding package/package.json

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / "package" / "package.json").read_text(encoding="utf-8"))

    @property
    def dependencies(self) -> dict[str, str]:
        return dict(self.manifest.get("dependencies") or {})

    @property
    def canonical(self) -> str | None:
        return self.manifest.get("canonical")

    @property
    def ref(self) -> PackageRef:
        return PackageRef(self.name, self.version, self.sha256)

    @cached_property
    def sha256(self) -> str:
        meta = self.path / ".kroniker.json"
        if meta.exists():
            try:
                return str(json.loads(meta.read_text())["sha256"])
            except (ValueError, KeyError):
                pass
        return tree_hash(self.path / "package")

    @cached_property
    def index(self) -> list[dict[str, Any]]:
        """The conformance resources in the package: file, resourceType, url, version (+ SD type/kind)."""
        pkg = self.path / "package"
        idx_file = pkg / ".index.json"
        entries: list[dict[str, Any]] = []
        if idx_file.exists():
            try:
                for f in json.loads(idx_file.read_text(encoding="utf-8")).get("files", []):
                    if f.get("resourceType") in _CONFORMANCE_TYPES and f.get("url"):
                        entries.append({**f, "path": pkg / f["filename"]})
                return entries
            except (ValueError, OSError):
                entries = []
        for file in sorted(pkg.glob("*.json")):
            try:
                res = json.loads(file.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                continue
            if isinstance(res, dict) and res.get("resourceType") in _CONFORMANCE_TYPES and res.get("url"):
                entries.append({"filename": file.name, "resourceType": res["resourceType"], "url": res["url"],
                                "version": res.get("version"), "type": res.get("type"),
                                "kind": res.get("kind"), "path": file})
        return entries

    @cached_property
    def urls(self) -> frozenset[str]:
        return frozenset(e["url"] for e in self.index)

    def examples(self) -> Iterator[Path]:
        yield from sorted((self.path / "package" / "example").glob("*.json"))


def tree_hash(root: Path) -> str:
    """The hash of a package folder's files (names and contents), for a package installed unpacked."""
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(root)).encode())
        h.update(b"\0")
        h.update(file.read_bytes())
    return h.hexdigest()


class PackageCache:
    """The standard FHIR package cache folder: <root>/<name>#<version>/package/…"""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root or STANDARD_CACHE_DIR).expanduser()
        self._scan: tuple[float, list[InstalledPackage]] | None = None
        self._known: dict[tuple[str, str], InstalledPackage] = {}
        self._sets: dict[tuple[object, ...], PackageSet] = {}

    def refresh(self) -> None:
        """Forget the last scan (the installer calls this after adding a package)."""
        self._scan = None

    # -- reading -----------------------------------------------------------------------------
    def installed(self) -> list[InstalledPackage]:
        """The packages in the cache; rescanned only when the folder changed (a package came or went)."""
        try:
            mtime = self.root.stat().st_mtime
        except OSError:
            return []
        if self._scan is not None and self._scan[0] == mtime:
            return self._scan[1]
        out = []
        for d in self.root.iterdir():
            if "#" in d.name and (d / "package" / "package.json").is_file():
                name, version = d.name.split("#", 1)
                pkg = self._known.get((name, version))
                if pkg is None or pkg.path != d:
                    pkg = self._known[(name, version)] = InstalledPackage(name, version, d)
                out.append(pkg)
        out.sort(key=lambda p: (p.name, version_key(p.version)))
        self._scan = (mtime, out)
        return out

    def get(self, name: str, version: str) -> InstalledPackage | None:
        known = self._known.get((name, version))
        if known is not None and (known.path / "package" / "package.json").is_file():
            return known
        d = self.root / f"{name}#{version}"
        if (d / "package" / "package.json").is_file():
            pkg = self._known[(name, version)] = InstalledPackage(name, version, d)
            return pkg
        return None

    def versions(self, name: str) -> list[str]:
        return [p.version for p in self.installed() if p.name == name]

    def find_defining(self, url: str) -> list[InstalledPackage]:
        """Installed packages that define a conformance resource with this canonical url."""
        return [p for p in self.installed() if url in p.urls]

    def package_set(self, pkg: InstalledPackage) -> PackageSet:
        """The package set rooted at `pkg`, made once per set of installed packages."""
        # Keyed on what is installed too: a dependency installed later makes a new, complete set.
        key = (pkg.name, pkg.version, tuple((p.name, p.version) for p in self.installed()))
        hit = self._sets.get(key)
        if hit is None:
            hit = self._sets[key] = PackageSet(self, pkg)
        return hit


# -- package sets --------------------------------------------------------------------------------

@dataclass
class SetNote:
    """Something about a package set a report must say (a missing or substituted package)."""

    severity: str  # "warning" | "information"
    key: str
    params: dict[str, Any]


class PackageSet:
    """One standard's package with the dependency versions it pins; resolves canonicals within."""

    def __init__(self, cache: PackageCache, root: InstalledPackage) -> None:
        self.cache = cache
        self.root = root
        self.packages: list[InstalledPackage] = []
        self.notes: list[SetNote] = []
        self._resolve_closure()
        self._by_url: dict[str, tuple[dict[str, Any], InstalledPackage]] = {}
        for pkg in self.packages:
            for entry in pkg.index:
                self._by_url.setdefault(entry["url"], (entry, pkg))
        self._loaded: dict[str, dict[str, Any]] = {}

    @property
    def refs(self) -> tuple[PackageRef, ...]:
        return tuple(p.ref for p in self.packages)

    @property
    def key(self) -> str:
        """Identifies the set's exact content (for caches of compiled plans)."""
        return hashlib.sha256("|".join(f"{p.name}#{p.version}:{p.sha256}" for p in self.packages)
                              .encode()).hexdigest()[:32]

    def _resolve_closure(self) -> None:
        pins = dict(self.root.dependencies)
        order: list[InstalledPackage] = [self.root]
        seen = {self.root.name}
        i = 0
        while i < len(order):
            pkg = order[i]
            i += 1
            for dep, ver in pkg.dependencies.items():
                if dep in seen:
                    if dep in pins and pins[dep] != ver and pkg is not self.root:
                        self._pin_mismatch(pkg, dep, ver, pins[dep])
                    continue
                seen.add(dep)
                want = pins.get(dep, ver)
                have = self.cache.get(dep, want)
                if have is None:
                    have = self._fallback(pkg, dep, want)
                if have is not None:
                    order.append(have)
        self.packages = order

    def _pin_mismatch(self, pkg: InstalledPackage, dep: str, wanted: str, used: str) -> None:
        if dep not in SUBSTITUTES and self.cache.get(dep, wanted) is None:
            self.notes.append(SetNote("warning", "package-fallback", {
                "package": f"{pkg.name}#{pkg.version}", "dependency": f"{dep}#{wanted}", "used": used,
                "root": f"{self.root.name}#{self.root.version}"}))

    def _fallback(self, needed_by: InstalledPackage, dep: str, version: str) -> InstalledPackage | None:
        if dep in SUBSTITUTES:
            self.notes.append(SetNote("information", "package-substituted" if SUBSTITUTES[dep] else
                                      "package-unavailable",
                                      {"dependency": f"{dep}#{version}", "substitute": SUBSTITUTES[dep] or ""}))
            return None
        others = self.cache.versions(dep)
        if others:
            same_major = [v for v in others if v.split(".")[0] == version.split(".")[0]]
            best = max(same_major or others, key=version_key)
            self.notes.append(SetNote("warning", "package-fallback", {
                "package": f"{needed_by.name}#{needed_by.version}", "dependency": f"{dep}#{version}",
                "used": best, "root": f"{self.root.name}#{self.root.version}"}))
            return self.cache.get(dep, best)
        self.notes.append(SetNote("warning", "package-missing", {
            "dependency": f"{dep}#{version}", "package": f"{needed_by.name}#{needed_by.version}"}))
        return None

    # -- canonicals ------------------------------------------------------------------------------
    def resolve(self, canonical: str) -> dict[str, Any] | None:
        """The conformance resource for a canonical (version suffix ignored within the set)."""
        url = canonical.split("|", 1)[0]
        hit = self._loaded.get(url)
        if hit is not None:
            return hit
        found = self._by_url.get(url)
        if found is None:
            return None
        entry, _pkg = found
        try:
            res = json.loads(Path(entry["path"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self._loaded[url] = res
        return res

    def package_of(self, canonical: str) -> InstalledPackage | None:
        found = self._by_url.get(canonical.split("|", 1)[0])
        return found[1] if found else None

    def has(self, canonical: str) -> bool:
        return canonical.split("|", 1)[0] in self._by_url

    def structure_definitions(self, package: InstalledPackage | None = None) -> Iterator[dict[str, Any]]:
        for url, (entry, pkg) in self._by_url.items():
            if entry.get("resourceType") == "StructureDefinition" and (package is None or pkg is package):
                sd = self.resolve(url)
                if sd:
                    yield sd


def choose_version(available: list[str], requested: str | None) -> tuple[str | None, str | None]:
    """The installed version to use for a requested one, per spec/findings.md: (version, note key).

    `x.y.z` exactly, else the highest `x.y.*` (warning); `x.y` the highest `x.y.*`; no version the
    highest (information); with nothing of that minor version, the highest of the same major
    (warning); nothing of that major version: (None, None).
    """
    if not available:
        return None, None
    ordered = sorted(available, key=version_key)
    if requested is None:
        return ordered[-1], "profile-version-none"
    if requested in available:
        return requested, None
    parts = requested.split("-", 1)[0].split(".")
    same_minor = [v for v in ordered if v.split("-", 1)[0].split(".")[:2] == parts[:2]]
    if same_minor:
        return same_minor[-1], (None if len(parts) == 2 else "profile-version-other")
    same_major = [v for v in ordered if v.split(".")[0] == parts[0]]
    if same_major:
        return same_major[-1], "profile-version-other"
    return None, None
