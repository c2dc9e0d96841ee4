"""Which standard and version a document claims, and the package set to validate it with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kroniker.validators.findings import Finding, Severity, finding
from kroniker.validators.packages import InstalledPackage, PackageCache, PackageSet, choose_version, version_key


@dataclass
class Identified:
    """The outcome of identification: a package set (or None) and what was said on the way."""

    packages: PackageSet | None
    composition_profile: str | None = None
    findings: list[Finding] = field(default_factory=list)


def package_set(cache: PackageCache, pkg: InstalledPackage) -> PackageSet:
    """The package set rooted at `pkg` (the cache keeps it: sets depend on what that cache holds)."""
    return cache.package_set(pkg)


def composition_of(bundle: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return None
    for i, e in enumerate(entries):
        if isinstance(e, dict) and isinstance(e.get("resource"), dict) and \
                e["resource"].get("resourceType") == "Composition":
            return i, e["resource"]
    return None


def _profiles_of(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


@dataclass
class _Pick:
    package: InstalledPackage
    profile: str
    findings: list[Finding]


def _pick(profiles: list[str], cache: PackageCache, loc: str, path: tuple[Any, ...]) -> _Pick | list[Finding] | None:
    """The package for the first claimed profile an installed package defines, by the version rule."""
    for profile in profiles:
        url, _, version = profile.partition("|")
        defining = cache.find_defining(url)
        if not defining:
            continue
        versions = [p.version for p in defining]
        chosen, note = choose_version(versions, version or None)
        if chosen is None:
            # Nothing of that major version: an error naming what is installed; the document is still read
            # with the newest installed version, so the rest of it gets checked too.
            newest = max(defining, key=lambda p: version_key(p.version))
            return _Pick(newest, profile, [finding(
                Severity.ERROR, "profile-unknown", loc, path,
                {"profile": profile, "installed": ", ".join(f"{p.name}#{p.version}" for p in defining),
                 "package": newest.name, "used": f"{newest.name}#{newest.version}"},
                message_key="profile-unknown-version")])
        pkg = next(p for p in defining if p.version == chosen)
        found: list[Finding] = []
        if note:
            sev = Severity.WARNING if note == "profile-version-other" else Severity.INFORMATION
            found.append(finding(sev, "profile-version", loc, path,
                                 {"profile": profile, "used": f"{pkg.name}#{pkg.version}"}, message_key=note))
        return _Pick(pkg, profile, found)
    return None


def _depends_on(cache: PackageCache, pkg: InstalledPackage, name: str) -> bool:
    seen, stack = set(), [pkg]
    while stack:
        p = stack.pop()
        for dep, ver in p.dependencies.items():
            if dep == name:
                return True
            if (dep, ver) not in seen:
                seen.add((dep, ver))
                have = cache.get(dep, ver)
                if have is not None:
                    stack.append(have)
    return False


def identify(bundle: dict[str, Any], cache: PackageCache) -> Identified:
    """Pick the standard from the Composition's meta.profile (spec/findings.md, 'Which profile version').

    The Bundle's own meta.profile is heard too: when it names a standard built on the one the Composition
    claims (a Shared Notes Bundle around a generic MedCom Document Composition), the Bundle's standard
    applies, so its rules can say what is wrong with the Composition. With no Composition at all, the
    Bundle's profile decides.
    """
    if bundle.get("resourceType") != "Bundle":
        return Identified(None)
    found = composition_of(bundle)
    by_bundle = _pick(_profiles_of(bundle), cache, "Bundle.meta.profile", ("meta", "profile"))
    if found is None:
        if isinstance(by_bundle, _Pick):
            return Identified(package_set(cache, by_bundle.package), None, by_bundle.findings)
        return Identified(None)
    index, comp = found
    loc = f"Bundle.entry[{index}].resource.meta.profile"
    path = ("entry", index, "resource", "meta", "profile")
    profiles = _profiles_of(comp)
    by_comp = _pick(profiles, cache, loc, path)
    if isinstance(by_comp, _Pick):
        if isinstance(by_bundle, _Pick) and by_bundle.package.name != by_comp.package.name and \
                _depends_on(cache, by_bundle.package, by_comp.package.name):
            return Identified(package_set(cache, by_bundle.package), None, by_bundle.findings)
        return Identified(package_set(cache, by_comp.package), by_comp.profile, by_comp.findings)
    # No installed package defines the claimed profile: guess by the Composition's type, to still help.
    guess = _by_type(comp, cache)
    claimed = profiles[0] if profiles else None
    notes = [finding(Severity.ERROR, "profile-unknown", loc, path,
                     {"profile": claimed or "(none)", "package": guess.name if guess else "?"},
                     message_key=("profile-unknown" if guess else "profile-unknown-any") if claimed
                     else "profile-none")]
    if guess is not None and claimed is None:
        return Identified(package_set(cache, guess), None, notes)
    return Identified(None, None, notes)


def _by_type(comp: dict[str, Any], cache: PackageCache) -> InstalledPackage | None:
    """An installed standard whose Composition profile fixes the same Composition.type code."""
    codes = set()
    t = comp.get("type")
    if isinstance(t, dict) and isinstance(t.get("coding"), list):
        for c in t["coding"]:
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                system = c.get("system")
                codes.add((system if isinstance(system, str) else None, c["code"]))
    if not codes:
        return None
    matches = [pkg for pkg in cache.installed()
               if any(e.get("resourceType") == "StructureDefinition" and e.get("type") == "Composition"
                      and _fixes_type(e, codes) for e in pkg.index)]
    return max(matches, key=lambda p: version_key(p.version)) if matches else None


def _fixes_type(entry: dict[str, Any], codes: set[tuple[Any, str]]) -> bool:
    import json
    from pathlib import Path

    try:
        sd = json.loads(Path(entry["path"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if sd.get("derivation") != "constraint":
        return False
    for e in (sd.get("snapshot") or {}).get("element", []):
        if e.get("path") == "Composition.type.coding.code" and e.get("fixedCode"):
            return any(c == e["fixedCode"] for _, c in codes)
        if e.get("path") == "Composition.type" and isinstance(e.get("patternCodeableConcept"), dict):
            want = {c.get("code") for c in e["patternCodeableConcept"].get("coding", [])}
            if any(c in want for _, c in codes):
                return True
    return False
