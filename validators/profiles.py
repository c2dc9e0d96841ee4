"""Compiled profiles for one package set: each StructureDefinition compiled once and reused.

The compiled plan (profiles, base structures, value set expansions) can be kept between runs in a `PlanStore`
the caller gives (a folder of its choosing), keyed by the package set's content hashes and a fingerprint of
the code and data that compiling reads (kroniker's engine, profiles/, fhir.resources, fhirpathpy), so a fresh
process validates its first document without compiling anything or importing fhir.resources' models.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pickle
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

from kroniker.validators import base
from kroniker.validators.invariants import FhirPath
from kroniker.validators.packages import PackageSet
from kroniker.validators.structure import BASE_SD, Structure, base_type_of_profile, compile_structure
from kroniker.validators.terminology import Terminology


class ProfileSet:
    """The compiled view of a package set (or of base FHIR alone when no standard is known)."""

    def __init__(self, packages: PackageSet | None, store: PlanStore | None = None) -> None:
        self.packages = packages
        self._structures: dict[str, Structure | None] = {}
        self._base: dict[str, Structure | None] = {}
        self.terminology = Terminology(self.resolve)
        self.fhirpath = FhirPath()
        # The walk's index of each element's children by JSON key (keyed by id(): the dict is kept alive with it).
        self.child_indexes: dict[int, tuple[Any, Any]] = {}
        self._dirty = False
        self._saving = threading.Lock()
        self.store = store
        self.plan_key = plan_key(packages)
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
        if sd is not None and sd.get("resourceType") == "StructureDefinition" and not sd.get("snapshot") \
                and sd.get("differential"):
            sd = self._with_snapshot(sd)
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

    def _with_snapshot(self, sd: dict[str, Any]) -> dict[str, Any] | None:
        """A profile shipped as a differential only, with the snapshot built from its base's (None: cannot)."""
        from kroniker.validators.snapshot import SnapshotError, with_snapshot

        try:
            return with_snapshot(sd, self.resolve)
        except (SnapshotError, KeyError, TypeError, AttributeError):
            return None

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

    # -- the plan in the store ---------------------------------------------------------------------------
    def _load(self) -> bool:
        plan = self.store.load(self.plan_key) if self.store is not None else None
        if plan is None:
            return False
        self._structures.update(plan.get("structures", {}))
        self._base.update(plan.get("base", {}))
        self.terminology.preload(plan.get("expansions", {}))
        if plan.get("resource_types"):
            base.preload_resource_types(plan["resource_types"])
        return True

    @property
    def dirty(self) -> bool:
        """Something was compiled or expanded since the plan was loaded or last saved."""
        return self._dirty or self.terminology.dirty

    def save(self) -> None:
        """Give the plan to the store if something new was compiled (the store writes it atomically)."""
        if self.store is None or not self.dirty:
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
        assert self.store is not None
        self.store.save(self.plan_key, plan)

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


class PlanStore:
    """Compiled plans on disk: one file per key in a folder the caller chooses (the engine picks no folder).

    Writing is atomic (a temporary file, then a rename), so processes sharing the folder never read half a
    plan; a plan that cannot be read (stale, broken, from other code) is not there, and is compiled again.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pickle"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            with open(self.path(key), "rb") as fh:
                plan = pickle.load(fh)
        except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, IndexError, TypeError,
                ValueError, MemoryError, RecursionError):
            return None
        return plan if isinstance(plan, dict) else None

    def save(self, key: str, plan: dict[str, Any]) -> None:
        """Write the plan; a folder that cannot be written only means the next process compiles again."""
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=self.directory)
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path(key))
        except (OSError, pickle.PickleError, RecursionError):
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def plan_key(packages: PackageSet | None) -> str:
    """The store's key for a package set's plan: its packages' content and everything compiling reads."""
    return f"{packages.key if packages is not None else 'base'}-{code_fingerprint()}"


_HERE = Path(__file__).resolve().parent


@cache  # immutable in a process: the files of the installed code (a changed file means a new process)
def code_fingerprint() -> str:
    """What the compiled plan depends on besides the packages: kroniker's engine code and profiles/ data, and
    the fhir.resources and fhirpathpy it reads base structures and types from.

    Files are fingerprinted by path, size and modification time (as Python's own bytecode cache checks its
    sources), not read: start-up time matters, and an edit or a reinstall changes them. Of the two libraries
    only the top folder is looked at (it holds their version), not their hundreds of model files.
    """
    from kroniker import __version__

    h = hashlib.sha256(__version__.encode())
    _stat_files(h, _HERE, (".py", ".json"), recursive=True)  # the engine's code and message tables
    _stat_files(h, _HERE.parent / "profiles", (".json",), recursive=True)  # value sets, code systems, rules
    for lib in ("fhir.resources", "fhirpathpy"):
        spec = importlib.util.find_spec(lib)
        if spec is not None and spec.origin:
            _stat_files(h, Path(spec.origin).parent, (".py",), recursive=False)
    return h.hexdigest()[:16]


def _stat_files(h: Any, root: Path, suffixes: tuple[str, ...], *, recursive: bool) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__") if recursive else []
        for name in sorted(filenames):
            if name.endswith(suffixes):
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    h.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
