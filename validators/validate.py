"""validate(source) -> Report: parse, identify the standard, walk every resource, apply the document
and prose rules, and collect the findings.

The engine is pure: a Validator is given its package cache, its limits and (optionally) a plan store, and
reads no environment variable. What it compiles lives on the Validator (its ProfileSets; package sets on its
PackageCache), never in module globals, so two Validators in one process never see each other's profiles.
Module-level caches that remain hold data that cannot differ between Validators, read from the installed
library and profiles/ files: the R4 base structures and resource types from fhir.resources and fhirpathpy
(base.py), kroniker's own value sets, rule files and catalogues (terminology.py, rules/prose.py,
catalogue.py, codes.py, messages/), compiled XML schemas (xsd.py) and pure functions of their input
(xhtml.py, constraints.py's base64 check).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kroniker.validators import catalogue
from kroniker.validators.budget import capped, within
from kroniker.validators.document import document_rules, entries_of
from kroniker.validators.engine import Entry, Walk
from kroniker.validators.findings import Finding, PackageRef, Report, Severity, dedupe, finding
from kroniker.validators.packages import PackageCache, PackageSet
from kroniker.validators.profiles import PlanStore, ProfileSet
from kroniker.validators.rules.prose import DocView, prose_rules
from kroniker.validators.source import Limits, Parsed, Source, Unreadable, parse
from kroniker.validators.standards import identify


class Validator:
    """Validates documents against the packages in one FHIR package cache.

    `plans`: where compiled plans are kept between processes (None: compiled in this process only). Plans are
    loaded when a package set is first used and written only by `save_plans()`, which the caller calls at a
    point of its choosing (after a batch, or after a request); it writes nothing when nothing new was compiled.
    """

    def __init__(self, cache: PackageCache | None = None, limits: Limits | None = None,
                 plans: PlanStore | None = None) -> None:
        self.cache = cache or PackageCache()
        self.limits = limits or Limits()
        self.plans = plans
        self._profile_sets: dict[PackageSet, ProfileSet] = {}
        self._base_only: ProfileSet | None = None
        self._package_profiles: dict[PackageSet, list[Any]] = {}  # note profiles built on a standard
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Validator(cache={self.cache.root!s}, limits={self.limits!r}, plans={self.plans is not None})"

    def profile_set(self, pset: PackageSet | None) -> ProfileSet:
        """The compiled view of a package set (base FHIR alone for None), made once per Validator."""
        hit = self._base_only if pset is None else self._profile_sets.get(pset)
        if hit is not None:
            return hit
        with self._lock:  # two threads' first documents must not both compile (and store) the same set
            hit = self._base_only if pset is None else self._profile_sets.get(pset)
            if hit is None:
                hit = ProfileSet(pset, self.plans)
                if pset is None:
                    self._base_only = hit
                else:
                    self._profile_sets[pset] = hit
        return hit

    def save_plans(self) -> None:
        """Give what was compiled since the last save to the plan store (nothing happens without one)."""
        if self.plans is None:
            return
        sets = [*self._profile_sets.values(), *([self._base_only] if self._base_only else [])]
        for ps in sets:
            ps.save()

    def validate(self, source: Source, name: str | None = None) -> Report:
        started = time.perf_counter()
        try:
            parsed = parse(source, self.limits)
        except Unreadable as exc:
            text = _text_for_snippet(source, self.limits) if exc.finding.line is not None else None
            return Report([exc.finding], source_name=name or _name_of(source),
                          seconds=time.perf_counter() - started, _text=text)
        if name:
            parsed.name = name
        return self.validate_parsed(parsed, started)

    def validate_parsed(self, parsed: Parsed, started: float | None = None) -> Report:
        """A document already read by `source.parse` (the server keeps the parsed document for its metadata)."""
        started = time.perf_counter() if started is None else started
        findings, standard, packages = self._run(parsed)
        return Report(findings, source_name=parsed.name, standard=standard, packages=packages,
                      entries=_entry_labels(parsed.data), seconds=time.perf_counter() - started,
                      _locate=parsed.locate, _text=parsed.text)

    def validate_resource(self, resource: dict[str, Any], profile: str, standard: PackageRef,
                          trusted: Iterable[dict[str, Any]] = ()) -> Report:
        """One resource (not a document) against a profile, read within a standard's package set.

        The reference server checks the DocumentReference it derives from a document this way; `trusted` are
        contained resources (the same objects) that were validated error-free with that document already.
        """
        from kroniker.validators.standards import package_set

        pkg = self.cache.get(standard.name, standard.version)
        if pkg is None:
            return Report([finding(Severity.ERROR, "profile-unknown", str(resource.get("resourceType", "?")), (),
                                   {"profile": profile, "package": standard.name})])
        pset = package_set(self.cache, pkg)
        profiles = self.profile_set(pset)
        rtype = resource.get("resourceType")
        entry = Entry(None, resource, (), rtype if isinstance(rtype, str) else "(resource)")
        walk = Walk(profiles, resource, [entry], trusted=frozenset(id(r) for r in trusted))
        findings = list(self._check(walk, entry, profile))
        i = 0
        while i < len(walk.required):
            target, p, _why = walk.required[i]
            i += 1
            findings.extend(self._check(walk, target, p))
        findings = dedupe(findings)
        return Report(findings, source_name=entry.loc, standard=pset.root.ref, packages=pset.refs)

    def iter_findings(self, source: Source) -> Iterator[Finding]:
        """The findings one by one (positions not filled in); nothing raises on bad input."""
        try:
            parsed = parse(source, self.limits)
        except Unreadable as exc:
            yield exc.finding
            return
        findings, _, _ = self._run(parsed)
        yield from findings

    def _run(self, parsed: Parsed) -> tuple[list[Finding], PackageRef | None, tuple[PackageRef, ...]]:
        doc = parsed.data
        findings: list[Finding] = list(parsed.findings)  # what reading found (XML structure) comes first
        rtype = doc.get("resourceType")
        if not isinstance(rtype, str):
            return [finding(Severity.FATAL, "unknown-resource-type", "(document)", (), {"found": rtype},
                            message_key="no-resource-type")], None, ()
        ident = identify(doc, self.cache)
        findings.extend(ident.findings)
        pset = ident.packages
        claim = self._package_claim(doc, pset)  # a care package's note: read within the package's set
        walk_set = self.cache.package_set(claim.package) if claim is not None else pset
        profiles = self.profile_set(walk_set)
        if walk_set is not None:
            for note in walk_set.notes:
                if note.severity == "warning":
                    findings.append(finding(Severity.WARNING, "package-missing", "(document)", (), note.params,
                                            message_key=note.key))
        entries = entries_of(doc)
        walk = Walk(profiles, doc, entries)
        comp = next((e for e in entries if e.index == 0 and e.resource.get("resourceType") == "Composition"), None)
        if claim is not None and comp is not None:
            walk.require(comp, claim.url, "Composition.event.code")
        noted = {f.location for f in ident.findings}
        findings.extend(within(self._walk_all(walk, entries, pset is not None, noted), self.limits.max_findings))
        findings = [catalogue.with_second_code(f, doc) for f in findings]
        present = {(f.rule, f.location) for f in findings} | {(f.rule, "*") for f in findings
                                                               if f.code.startswith("invariant:bdl")}
        findings.extend(document_rules(walk, doc, present))
        if pset is not None:
            comp_profile = next((sd["url"] for sd in pset.structure_definitions(pset.root)
                                 if sd.get("type") == "Composition" and sd.get("derivation") == "constraint"), None)
            view = DocView(walk, doc, entries, pset.root.name, comp_profile,
                           _prose_params(pset.root.name), self.limits.max_note_bytes)
            findings.extend(prose_rules(view))
        if claim is not None and comp is not None:
            from kroniker.validators.package_notes import section_rules

            findings.extend(section_rules(doc, 0, claim, self.limits.max_note_bytes))
        findings = capped(dedupe(findings), self.limits.max_findings_per_code)
        standard = pset.root.ref if pset else None
        return findings, standard, walk_set.refs if walk_set else ()

    def _package_claim(self, doc: dict[str, Any], pset: PackageSet | None) -> Any:
        """The care package note profile a Shared Note's event code claims (kroniker.validators.package_notes),
        or None; the installed packages' note profiles are looked up once per package set."""
        comp = doc.get("entry", [{}])[0] if isinstance(doc.get("entry"), list) and doc["entry"] else None
        comp = comp.get("resource") if isinstance(comp, dict) else None
        if pset is None or not isinstance(comp, dict) or comp.get("resourceType") != "Composition" \
                or not isinstance(comp.get("event"), list):
            return None
        from kroniker.validators.package_notes import claimed, package_profiles

        found = self._package_profiles.get(pset)
        if found is None:
            found = self._package_profiles[pset] = package_profiles(self.cache, pset.root)
        return claimed(comp, found)

    def _walk_all(self, walk: Walk, entries: list[Entry], with_standard: bool,
                  noted: set[str]) -> Iterator[Finding]:
        profiles = walk.profiles
        pset = profiles.packages
        for entry in entries:
            rtype = entry.resource.get("resourceType")
            if not isinstance(rtype, str) or (rtype not in _resource_types()):
                yield finding(Severity.ERROR, "unknown-resource-type", entry.loc, (*entry.path, "resourceType"),
                              {"found": rtype})
                continue
            declared = _declared_profiles(entry)
            chosen: list[str] = []
            for p in declared:
                if profiles.structure(p) is not None:
                    chosen.append(p)
                    if pset is not None and "|" in p:
                        have = pset.package_of(p)
                        want = p.split("|", 1)[1]
                        if have is not None and not have.version.startswith(want) and entry.index is not None \
                                and f"{entry.loc}.meta.profile" not in noted:
                            yield finding(Severity.INFORMATION, "profile-version", f"{entry.loc}.meta.profile",
                                          (*entry.path, "meta", "profile"),
                                          {"profile": p, "used": f"{have.name}#{have.version}"},
                                          message_key="profile-version-set")
                elif entry.index is not None or not with_standard:
                    yield finding(Severity.WARNING, "profile-unknown", f"{entry.loc}.meta.profile",
                                  (*entry.path, "meta", "profile"), {"profile": p},
                                  message_key="profile-unknown-resource")
            if entry.index is None and not chosen and pset is not None:
                # A Bundle that names no profile is still held to its standard's Bundle profile.
                bundle_profile = next((sd["url"] for sd in pset.structure_definitions(pset.root)
                                       if sd.get("type") == "Bundle" and sd.get("derivation") == "constraint"), None)
                if bundle_profile:
                    chosen.append(bundle_profile)
            if not chosen:
                chosen.append(f"http://hl7.org/fhir/StructureDefinition/{rtype}")
            for p in chosen:
                yield from self._check(walk, entry, p)
        # Profiles other resources or slices demand of an entry (reference target profiles, entry slices).
        done = {(id(e), p.split("|", 1)[0]) for e in entries for p in _declared_profiles(e)}
        i = 0
        while i < len(walk.required):
            entry, profile, _why = walk.required[i]
            i += 1
            key = (id(entry), profile.split("|", 1)[0])
            if key in done:
                continue
            done.add(key)
            yield from self._check(walk, entry, profile)

    def _check(self, walk: Walk, entry: Entry, profile: str) -> Iterator[Finding]:
        struct = walk.profiles.structure(profile)
        if struct is None:
            yield finding(Severity.WARNING, "profile-unknown", entry.loc, entry.path, {"profile": profile},
                          message_key="profile-unknown-resource")
            return
        if struct.type != entry.resource.get("resourceType"):
            yield finding(Severity.ERROR, "type", entry.loc, entry.path,
                          {"expected": struct.type, "found": entry.resource.get("resourceType"), "profile": profile},
                          message_key="type-profile")
            return
        yield from walk.full(entry, struct)


def _declared_profiles(entry: Entry) -> list[str]:
    meta = entry.resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def _resource_types() -> frozenset[str]:
    from kroniker.validators.base import resource_types

    return resource_types()


def _prose_params(package: str) -> dict[str, str]:
    from kroniker.validators.rules.prose import prose_config

    cfg = prose_config().get(package) or {}
    return {k: v for k, v in cfg.items() if k != "rules"}


def _entry_labels(doc: Any) -> tuple[str, ...]:
    """"Composition/<id>" for each entry of a Bundle (the resource type alone when it has no id)."""
    entries = doc.get("entry") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return ()
    labels = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        rid = resource.get("id") if isinstance(resource, dict) else None
        rtype = rtype if isinstance(rtype, str) else "?"
        labels.append(f"{rtype}/{rid}" if isinstance(rid, str) else rtype)
    return tuple(labels)


def _text_for_snippet(source: Source, limits: Limits) -> str | None:
    """The input's text for showing where it could not be read (a JSON syntax error has a line:column);
    best effort, never raising: bytes that are not UTF-8 are shown replaced."""
    try:
        if isinstance(source, str):
            return source
        if isinstance(source, os.PathLike):
            with open(source, "rb") as fh:
                raw = fh.read(limits.max_bytes)
        else:
            raw = bytes(source[:limits.max_bytes])
    except (OSError, TypeError):
        return None
    return raw.decode("utf-8", "replace").removeprefix("\ufeff")


def _name_of(source: Source) -> str:
    return os.fspath(source) if isinstance(source, os.PathLike) else "<bytes>" if isinstance(
        source, (bytes, bytearray, memoryview)) else "<text>"


_DEFAULT: list[Validator] = []


def default_validator() -> Validator:
    """The Validator behind `kroniker.validators.validate()`: the standard package cache (~/.fhir/packages),
    default limits, no plan store; made once, so that its compiled profiles serve every call."""
    if not _DEFAULT:
        _DEFAULT.append(Validator())
    return _DEFAULT[0]
