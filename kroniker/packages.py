"""Installing FHIR packages into a package cache: archives, unpacked folders, and registries over the network.

The front's part of the package cache: the engine only reads a cache (kroniker.validators.packages); which
cache and which registry a command uses is kroniker/settings.py's to say.
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kroniker.validators.findings import PackageRef
from kroniker.validators.packages import InstalledPackage, PackageCache, parse_spec, tree_hash

DEFAULT_REGISTRIES = ("https://packages.fhir.org", "https://packages2.fhir.org/packages")
MAX_PACKAGE_BYTES = 200 * 1024 * 1024


class PackageError(Exception):
    """A package could not be installed or read; the message says why, for a user."""


@dataclass
class InstallReport:
    installed: list[PackageRef] = field(default_factory=list)
    already: list[PackageRef] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (name, version, needed by)


def install_tgz(cache: PackageCache, data: bytes, origin: str) -> tuple[InstalledPackage, bool]:
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
        existing = cache.get(name, version)
        if existing:
            return existing, False
        cache.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=cache.root))
        try:
            try:
                _safe_extract(tf, tmp, origin)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise PackageError(f"{origin}: a damaged package archive ({exc or type(exc).__name__})") from None
            (tmp / ".kroniker.json").write_text(json.dumps(
                {"sha256": hashlib.sha256(data).hexdigest(), "from": origin}))
            return _commit(cache, tmp, name, version), True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

def install_unpacked(cache: PackageCache, folder: Path) -> tuple[InstalledPackage, bool]:
    pkg_json = folder / "package" / "package.json"
    if not pkg_json.is_file():
        raise PackageError(f"{folder}: not an unpacked package (no package/package.json)")
    try:
        manifest = json.loads(pkg_json.read_text(encoding="utf-8"))
    except ValueError:
        raise PackageError(f"{pkg_json}: not valid JSON") from None
    name, version = _name_version(manifest, str(folder))
    existing = cache.get(name, version)
    if existing:
        return existing, False
    cache.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=cache.root))
    try:
        shutil.copytree(folder / "package", tmp / "package", symlinks=False)
        (tmp / ".kroniker.json").write_text(json.dumps(
            {"sha256": tree_hash(tmp / "package"), "from": str(folder)}))
        return _commit(cache, tmp, name, version), True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

def _commit(cache: PackageCache, tmp: Path, name: str, version: str) -> InstalledPackage:
    target = cache.root / f"{name}#{version}"
    if target.exists() and not (target / "package" / "package.json").is_file():
        # What is left of an install some other tool broke off: not a package, so replace it.
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp, target)  # atomic: a reader never sees half a package
    except OSError as exc:
        if not cache.get(name, version):  # another process may have won the race
            raise PackageError(f"cannot install {name}#{version} into {target}: {exc.strerror}") from None
    cache.refresh()
    pkg = cache.get(name, version)
    if pkg is None:
        raise PackageError(f"cannot install {name}#{version} into {target}")
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
        self.registries = list(registries) if registries is not None else list(DEFAULT_REGISTRIES)
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
            return [install_tgz(self.cache, data, str(path))]
        if path.is_dir():
            if (path / "package" / "package.json").is_file():
                return [install_unpacked(self.cache, path)]
            tgzs = sorted(path.glob("*.tgz")) + sorted(path.glob("*.tar.gz"))
            if not tgzs:
                raise PackageError(f"{path}: neither an unpacked package nor a folder of .tgz files")
            return [install_tgz(self.cache, t.read_bytes(), str(t)) for t in tgzs]
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
            return install_tgz(self.cache, local.read_bytes(), str(local))
        errors = []
        for reg in self.registries:
            try:
                data = self._download(reg.rstrip("/"), name, version)
            except PackageError as exc:
                errors.append(str(exc))
                continue
            return install_tgz(self.cache, data, f"{reg}/{name}/{version}")
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
