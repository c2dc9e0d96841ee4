"""Compiled profiles for one package set: each StructureDefinition compiled once and reused.

The compiled plan (profiles, base structures, value set expansions) is kept on disk between runs, keyed
by the package set's content hashes and the versions of kroniker and fhir.resources, so a fresh process
validates its first document without compiling anything or importing fhir.resources' models.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import threading
from pathlib import Path
from typing import Any

from kroniker.validators import base
from kroniker.validators.invariants import FhirPath
from kroniker.validators.packages import PackageSet
from kroniker.validators.structure import BASE_SD, Structure, base_type_of_profile, compile_structure
from kroniker.validators.terminology import Terminology


class ProfileSet:
    """The compiled view of a package set (or of base FHIR alone when no standard is known)."""

    def __init__(self, packages: PackageSet | None, plan_dir: Path | None = None) -> None:
        self.packages = packages
        self._structures: dict[str, Structure | None] = {}
        self._base: dict[str, Structure | None] = {}
        self.terminology = Terminology(self.resolve)
        self.fhirpath = FhirPath()
        self._dirty = False
        self._saving = threading.Lock()
        self.plan_path = _plan_path(packages, plan_dir)
        self.loaded_from_disk = self._load()

    def resolve(self, canonical: str) -> dict[str, Any] | None:
        return self.packages.resolve(canonical) if self.packages else None

    def structure(self, canonical: str) -> Structure | None:
        """A profile by canonical: from the set's packages, or a base definition from fhir.resources."""
        url = canonical.split("|", 1)[0]
        if url in self._structures:
            return self._structures[url]
        struct: Structure | None = None
        sd = self.resolve(url)
        if sd is not None and sd.get("resourceType") == "StructureDefinition" and sd.get("snapshot"):
            try:
                struct = compile_structure(sd)
            except (ValueError, KeyError, TypeError):
                struct = None
        elif url.startswith(BASE_SD):
            struct = base.base_structure(url[len(BASE_SD):])
        self._structures[url] = struct
        self._dirty = True
        return struct

    def base(self, type_name: str) -> Structure | None:
        hit = self._base.get(type_name, _MISS)
        if hit is _MISS:
            hit = self._base[type_name] = base.base_structure(type_name)
            self._dirty = True
        return hit  # type: ignore[return-value]

    def element_enum(self, base_path: str) -> tuple[str, ...] | None:
        """The base code list of an element by its base path (`Composition.status`), via the plan."""
        type_name, _, rest = base_path.partition(".")
        struct = self.base(type_name) if rest else None
        el = struct.root if struct else None
        for part in rest.split(".") if rest else ():
            if el is None:
                return None
            nxt = el.children.get(part)
            if nxt is None and el.types and not el.children:
                sub = self.base(el.types[0].code)
                nxt = sub.root.children.get(part) if sub else None
            el = nxt
        return el.enum if el else None

    # -- the plan on disk ------------------------------------------------------------------------------
    def _load(self) -> bool:
        if self.plan_path is None or not self.plan_path.is_file():
            return False
        try:
            with open(self.plan_path, "rb") as fh:
                plan = pickle.load(fh)
        except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, TypeError, ValueError):
            return False  # a stale or broken plan is simply rebuilt
        self._structures.update(plan.get("structures", {}))
        self._base.update(plan.get("base", {}))
        self.terminology.preload(plan.get("expansions", {}))
        if plan.get("resource_types"):
            base.preload_resource_types(plan["resource_types"])
        return True

    def save(self) -> None:
        """Write the plan if this process compiled something new (atomically: readers never see half)."""
        if self.plan_path is None or not (self._dirty or self.terminology.dirty):
            return
        if not self._saving.acquire(blocking=False):
            return  # another thread of this process is writing it already
        try:
            self._save()
        finally:
            self._saving.release()

    def _save(self) -> None:
        # Snapshots: other threads may compile into the live dicts while this one pickles (dict() is atomic).
        plan = {"structures": dict(self._structures), "base": dict(self._base),
                "expansions": self.terminology.expansions(), "resource_types": base.resource_types()}
        self._dirty = False
        self.terminology.dirty = False
        tmp = None
        try:
            self.plan_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=self.plan_path.parent)
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.plan_path)
        except (OSError, pickle.PickleError, RecursionError):
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def type_of(self, canonical: str) -> str | None:
        """The resource or datatype a profile constrains."""
        t = base_type_of_profile(canonical)
        if t:
            return t
        sd = self.resolve(canonical)
        if sd is not None and sd.get("resourceType") == "StructureDefinition":
            return sd.get("type")
        return None

    def knows(self, canonical: str) -> bool:
        return self.packages is not None and self.packages.has(canonical)


_MISS = object()


def default_plan_dir() -> Path:
    home = os.environ.get("KRONIKER_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".kroniker") / "plans"


def _plan_path(packages: PackageSet | None, plan_dir: Path | None) -> Path | None:
    if os.environ.get("KRONIKER_NO_PLAN_CACHE"):
        return None
    from importlib.metadata import PackageNotFoundError, version

    from kroniker import __version__

    try:
        fr = version("fhir.resources")
    except PackageNotFoundError:
        fr = "?"
    key = packages.key if packages is not None else "base"
    return (plan_dir or default_plan_dir()) / f"{key}-k{__version__}-fr{fr}-{_code_fingerprint()}.pickle"


def _code_fingerprint() -> str:
    """The compiled plan depends on the code that compiles it, not only on kroniker's version number."""
    import hashlib

    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("structure.py", "base.py", "terminology.py", "profiles.py"):
        with contextlib.suppress(OSError):
            h.update((here / name).read_bytes())
    return h.hexdigest()[:12]
