"""Compiled profiles for one package set: each StructureDefinition compiled once and reused."""

from __future__ import annotations

from typing import Any

from kroniker.validators import base
from kroniker.validators.invariants import FhirPath
from kroniker.validators.packages import PackageSet
from kroniker.validators.structure import BASE_SD, Structure, base_type_of_profile, compile_structure
from kroniker.validators.terminology import Terminology


class ProfileSet:
    """The compiled view of a package set (or of base FHIR alone when no standard is known)."""

    def __init__(self, packages: PackageSet | None) -> None:
        self.packages = packages
        self._structures: dict[str, Structure | None] = {}
        self.terminology = Terminology(self.resolve)
        self.fhirpath = FhirPath()

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
        return struct

    def base(self, type_name: str) -> Structure | None:
        return base.base_structure(type_name)

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
