"""The FHIR package cache (~/.fhir/packages, as the HL7 validator and SUSHI use it) and package sets.

A *package set* is one standard at one version (e.g. medcom.fhir.dk.notes#1.0.0) with the dependency
versions that package pins; canonicals resolve inside that set only, so Shared Notes and ConditionList
never see each other's versions of MedCom Document, MedCom Core or DK Core.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kroniker.validators.findings import PackageRef

DEFAULT_REGISTRIES = ("https://packages.fhir.org", "https://packages2.fhir.org/packages")
MAX_PACKAGE_BYTES = 200 * 1024 * 1024
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


class PackageError(Exception):
    """A package could not be installed or read; the message says why, for a user."""


def default_cache_dir() -> Path:
    env = os.environ.get("KRONIKER_FHIR_PACKAGES") or os.environ.get("FHIR_PACKAGE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".fhir" / "packages"


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
        return _tree_hash(self.path / "package")

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


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(root)).encode())
        h.update(b"\0")
        h.update(file.read_bytes())
    return h.hexdigest()


@dataclass
class InstallReport:
    installed: list[PackageRef] = field(default_factory=list)
    already: list[PackageRef] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (name, version, needed by)


class PackageCache:
    """The standard FHIR package cache folder: <root>/<name>#<version>/package/…"""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self._scan: tuple[float, list[InstalledPackage]] | None = None
        self._known: dict[tuple[str, str], InstalledPackage] = {}

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

    # -- installing --------------------------------------------------------------------------
    def install_tgz(self, data: bytes, origin: str) -> tuple[InstalledPackage, bool]:
        """Unpack a package archive into the cache; (package, newly installed)."""
        if len(data) > MAX_PACKAGE_BYTES:
            raise PackageError(f"{origin}: larger than {MAX_PACKAGE_BYTES} bytes")
        try:
            tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 (closed by the with below)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise PackageError(f"{origin}: not a package archive ({exc})") from None
        with tf:
            try:
                member = tf.getmember("package/package.json")
                manifest = json.loads(tf.extractfile(member).read())  # type: ignore[union-attr]
            except (KeyError, ValueError, AttributeError):
                raise PackageError(f"{origin}: no readable package/package.json in the archive") from None
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise PackageError(f"{origin}: a damaged package archive ({exc or type(exc).__name__})") from None
            name, version = _name_version(manifest, origin)
            existing = self.get(name, version)
            if existing:
                return existing, False
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=self.root))
            try:
                try:
                    _safe_extract(tf, tmp, origin)
                except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                    raise PackageError(f"{origin}: a damaged package archive ({exc or type(exc).__name__})") from None
                (tmp / ".kroniker.json").write_text(json.dumps(
                    {"sha256": hashlib.sha256(data).hexdigest(), "from": origin}))
                return self._commit(tmp, name, version), True
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def install_unpacked(self, folder: Path) -> tuple[InstalledPackage, bool]:
        pkg_json = folder / "package" / "package.json"
        if not pkg_json.is_file():
            raise PackageError(f"{folder}: not an unpacked package (no package/package.json)")
        try:
            manifest = json.loads(pkg_json.read_text(encoding="utf-8"))
        except ValueError:
            raise PackageError(f"{pkg_json}: not valid JSON") from None
        name, version = _name_version(manifest, str(folder))
        existing = self.get(name, version)
        if existing:
            return existing, False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=self.root))
        try:
            shutil.copytree(folder / "package", tmp / "package", symlinks=False)
            (tmp / ".kroniker.json").write_text(json.dumps(
                {"sha256": _tree_hash(tmp / "package"), "from": str(folder)}))
            return self._commit(tmp, name, version), True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _commit(self, tmp: Path, name: str, version: str) -> InstalledPackage:
        target = self.root / f"{name}#{version}"
        if target.exists() and not (target / "package" / "package.json").is_file():
            # What is left of an install some other tool broke off: not a package, so replace it.
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)  # atomic: a reader never sees half a package
        except OSError as exc:
            if not self.get(name, version):  # another process may have won the race
                raise PackageError(f"cannot install {name}#{version} into {target}: {exc.strerror}") from None
        self._scan = None
        pkg = self._known[(name, version)] = InstalledPackage(name, version, target)
        return pkg


def _name_version(manifest: Any, origin: str) -> tuple[str, str]:
    if not isinstance(manifest, dict) or not manifest.get("name") or not manifest.get("version"):
        raise PackageError(f"{origin}: package.json lacks name or version")
    name, version = str(manifest["name"]), str(manifest["version"])
    if not parse_spec(f"{name}#{version}"):
        raise PackageError(f"{origin}: unusable package name or version {name}#{version}")
    return name, version


def _safe_extract(tf: tarfile.TarFile, dest: Path, origin: str) -> None:
    total = 0
    for m in tf.getmembers():
        target = (dest / m.name).resolve()
        if not str(target).startswith(str(dest.resolve()) + os.sep):
            raise PackageError(f"{origin}: archive member {m.name!r} points outside the package")
        if m.issym() or m.islnk() or m.isdev():
            continue
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        if not m.isfile():
            continue
        total += m.size
        if total > MAX_PACKAGE_BYTES:
            raise PackageError(f"{origin}: unpacks to more than {MAX_PACKAGE_BYTES} bytes")
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tf.extractfile(m)
        if src is None:
            continue
        with open(target, "wb") as out:
            shutil.copyfileobj(src, out)


# -- installing by name, file or folder ----------------------------------------------------------

class Installer:
    """Fills a cache from specs: NAME#VERSION (local folders first, then registries), FILE.tgz, DIR."""

    def __init__(self, cache: PackageCache, *, sources: Iterable[Path] = (),
                 registries: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        self.cache = cache
        self.sources = [Path(s) for s in sources]
        env = os.environ.get("KRONIKER_FHIR_REGISTRY")
        self.registries = list(registries) if registries is not None else (
            [env] if env else list(DEFAULT_REGISTRIES))
        self.timeout = timeout
        self._local: dict[tuple[str, str], Path] | None = None

    def install(self, specs: Iterable[str], *, with_dependencies: bool = True) -> InstallReport:
        report = InstallReport()
        queue: list[tuple[InstalledPackage, str]] = []
        for spec in specs:
            for pkg, new in self._install_one(spec):
                (report.installed if new else report.already).append(pkg.ref)
                queue.append((pkg, spec))
        seen: set[tuple[str, str]] = set()
        while queue:
            pkg, _ = queue.pop(0)
            if (pkg.name, pkg.version) in seen:
                continue
            seen.add((pkg.name, pkg.version))
            for dep, ver in pkg.dependencies.items():
                have = self.cache.get(dep, ver)
                if have is None and with_dependencies:
                    have = self._fetch_quietly(dep, ver)
                    if have is not None:
                        report.installed.append(have.ref)
                if have is None:
                    needed_by = f"{pkg.name}#{pkg.version}"
                    if (dep, ver, needed_by) not in report.missing:
                        report.missing.append((dep, ver, needed_by))
                else:
                    queue.append((have, dep))
        return report

    def _install_one(self, spec: str) -> list[tuple[InstalledPackage, bool]]:
        nv = parse_spec(spec)
        if nv and not Path(spec).exists():
            pkg = self.cache.get(*nv)
            if pkg:
                return [(pkg, False)]
            return [self._fetch(*nv)]
        path = Path(spec).expanduser()
        if path.is_file():
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PackageError(f"{path}: cannot read ({exc.strerror})") from None
            return [self.cache.install_tgz(data, str(path))]
        if path.is_dir():
            if (path / "package" / "package.json").is_file():
                return [self.cache.install_unpacked(path)]
            tgzs = sorted(path.glob("*.tgz")) + sorted(path.glob("*.tar.gz"))
            if not tgzs:
                raise PackageError(f"{path}: neither an unpacked package nor a folder of .tgz files")
            return [self.cache.install_tgz(t.read_bytes(), str(t)) for t in tgzs]
        raise PackageError(f"{spec}: not NAME#VERSION, a .tgz file or a folder")

    def _local_archives(self) -> dict[tuple[str, str], Path]:
        if self._local is None:
            self._local = {}
            for folder in self.sources:
                for t in sorted(folder.glob("*.tgz")):
                    m = re.match(r"^(.+)-(\d[^-]*(?:-[^-]+)?)\.tgz$", t.name)
                    nv = _manifest_of(t) or ((m.group(1), m.group(2)) if m else None)
                    if nv:
                        self._local.setdefault(nv, t)
        return self._local

    def _fetch_quietly(self, name: str, version: str) -> InstalledPackage | None:
        try:
            return self._fetch(name, version)[0]
        except PackageError:
            return None

    def _fetch(self, name: str, version: str) -> tuple[InstalledPackage, bool]:
        local = self._local_archives().get((name, version))
        if local:
            return self.cache.install_tgz(local.read_bytes(), str(local))
        errors = []
        for reg in self.registries:
            try:
                data = self._download(reg.rstrip("/"), name, version)
            except PackageError as exc:
                errors.append(str(exc))
                continue
            return self.cache.install_tgz(data, f"{reg}/{name}/{version}")
        raise PackageError(f"{name}#{version}: not found in {', '.join(map(str, self.sources)) or 'no local folder'}"
                           f" nor in the registries ({'; '.join(errors) or 'none configured'})")

    def _download(self, registry: str, name: str, version: str) -> bytes:
        import httpx  # only an install by name needs the network client

        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
                url = f"{registry}/{name}/{version}"
                tarball = None
                meta = client.get(f"{registry}/{name}", headers={"Accept": "application/json"})
                if meta.status_code == 200:
                    try:
                        listing = meta.json()
                    except ValueError:
                        listing = None
                    versions = listing.get("versions") if isinstance(listing, dict) else None
                    if not isinstance(versions, dict):
                        raise PackageError(f"{registry}: the answer for {name} is not a package listing")
                    if version not in versions:
                        raise PackageError(f"{registry}: {name} has no version {version}")
                    entry = versions[version]
                    dist = entry.get("dist") if isinstance(entry, dict) else None
                    tarball = dist.get("tarball") if isinstance(dist, dict) else None
                    if tarball is not None and not isinstance(tarball, str):
                        tarball = None
                resp = client.get(tarball or url, headers={"Accept": "application/tar+gzip"})
                if resp.status_code != 200:
                    raise PackageError(f"{registry}: {name}#{version} answered HTTP {resp.status_code}")
                if len(resp.content) > MAX_PACKAGE_BYTES:
                    raise PackageError(f"{registry}: {name}#{version} is too large")
                return resp.content
        except httpx.HTTPError as exc:
            raise PackageError(f"{registry}: {exc.__class__.__name__}: {exc}") from None


def _manifest_of(tgz: Path) -> tuple[str, str] | None:
    try:
        with tarfile.open(tgz, "r:*") as tf:
            m = json.loads(tf.extractfile("package/package.json").read())  # type: ignore[union-attr]
            return str(m["name"]), str(m["version"])
    except (tarfile.TarError, OSError, KeyError, ValueError, AttributeError):
        return None


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
