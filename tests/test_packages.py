"""The FHIR package cache, installing packages (file, folder, local name, loopback registry), package sets,
profile-version choice and `kroniker packages install|list`.

Expected values come from the packages' own package.json files (read here with tarfile, independently of
the code under test) and from spec/findings.md ("Which profile version applies", "Packages that cannot be
had here"); MedCom's archives are read from ../shared/fhir-packages and never copied into the repo.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kroniker.cli import main
from kroniker.packages import Installer, PackageError, install_tgz
from kroniker.validators.findings import Severity
from kroniker.validators.packages import PackageCache, PackageSet, choose_version
from kroniker.validators.standards import package_set
from kroniker.validators.validate import Validator
from tests.builders import diagnosis_card, shared_note

NOTES = ("medcom.fhir.dk.notes", "1.0.0")
CONDITIONLIST = ("medcom.fhir.dk.conditionlist", "1.0.1")
DOCUMENT_PATIENT = "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-patient"
NOTES_COMPOSITION = "http://medcomfhir.dk/ig/notes/StructureDefinition/medcom-notes-composition"

# spec/findings.md, "Packages that cannot be had here": never in ../shared/fhir-packages.
UNOBTAINABLE = {"hl7.fhir.r4.core", "hl7.terminology.r4", "hl7.fhir.uv.extensions.r4", "ihe.iti.mhd",
                "hl7.fhir.uv.xver-r5.r4", "hl7.fhir.uv.phd", "hl7.fhir.uv.ipa"}

shared = pytest.mark.needs_shared
network = pytest.mark.network

NV = tuple[str, str]


# -- what the archives say about themselves (read without the code under test) -------------------------

def manifest_of(tgz: Path | bytes) -> dict[str, Any]:
    fileobj = io.BytesIO(tgz) if isinstance(tgz, bytes) else None
    with tarfile.open(name=None if fileobj else tgz, fileobj=fileobj, mode="r:gz") as tf:
        member = tf.extractfile("package/package.json")
        assert member is not None
        return json.loads(member.read())


def archive_files(tgz: Path) -> set[str]:
    """The regular files under package/ in an archive, as paths relative to package/."""
    with tarfile.open(tgz, "r:gz") as tf:
        return {m.name.removeprefix("package/") for m in tf.getmembers()
                if m.isfile() and m.name.startswith("package/")}


def installed_files(pkg_dir: Path) -> set[str]:
    root = pkg_dir / "package"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="session")
def archives(package_dir: Path) -> dict[NV, Path]:
    """(name, version) → the .tgz in ../shared/fhir-packages, keyed by each archive's own package.json."""
    out: dict[NV, Path] = {}
    for tgz in sorted(package_dir.glob("*.tgz")):
        m = manifest_of(tgz)
        out[(m["name"], m["version"])] = tgz
    assert out, f"no archives in {package_dir}"
    return out


@pytest.fixture(scope="session")
def manifests(archives: dict[NV, Path]) -> dict[NV, dict[str, Any]]:
    return {nv: manifest_of(path) for nv, path in archives.items()}


def dependency_closure(root: NV, manifests: dict[NV, dict[str, Any]]) -> tuple[set[NV], set[NV]]:
    """What installing `root` with dependencies must give: (the available packages reachable through each
    package's own pins, the pinned (name, version)s that are not available)."""
    have, missing, todo = set(), set(), [root]
    while todo:
        nv = todo.pop()
        if nv in have:
            continue
        have.add(nv)
        for dep in manifests[nv].get("dependencies", {}).items():
            if dep in manifests:
                todo.append(dep)
            else:
                missing.add(dep)
    return have, missing


def nv_set(refs: Any) -> set[NV]:
    return {(r.name, r.version) for r in refs}


def assert_cache_clean(cache: PackageCache) -> None:
    """Nothing installed and no temporary install folders left behind."""
    leftovers = sorted(p.name for p in cache.root.iterdir()) if cache.root.exists() else []
    assert leftovers == [], f"left in the cache: {leftovers}"


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@pytest.fixture(autouse=True)
def _no_public_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever falls back on the default registry (packages.fhir.org) must fail at once, not hang on a
    # network this machine does not have; port 1 on loopback refuses the connection. Subprocesses inherit it.
    monkeypatch.setenv("KRONIKER_FHIR_REGISTRY", "http://127.0.0.1:1")
    monkeypatch.delenv("KRONIKER_DEBUG", raising=False)


# -- 1. installing from files, folders and local names ----------------------------------------------------

@shared
def test_install_single_tgz_uses_standard_cache_layout(empty_cache: PackageCache, archives: dict[NV, Path],
                                                       manifests: dict[NV, dict[str, Any]]) -> None:
    nv = ("medcom.fhir.dk.document", "1.0.1")
    tgz = archives[nv]
    report = Installer(empty_cache, registries=[]).install([str(tgz)], with_dependencies=False)

    assert nv_set(report.installed) == {nv}
    assert report.already == []
    # <root>/<name>#<version>/package/package.json, as the HL7 validator and SUSHI expect it.
    pkg_dir = empty_cache.root / f"{nv[0]}#{nv[1]}"
    assert json.loads((pkg_dir / "package" / "package.json").read_text(encoding="utf-8")) == manifests[nv]
    assert installed_files(pkg_dir) == archive_files(tgz)
    # The recorded hash is the archive's, so a report can name exactly what it was validated against.
    sha = hashlib.sha256(tgz.read_bytes()).hexdigest()
    assert report.installed[0].sha256 == sha
    assert empty_cache.get(*nv) is not None and empty_cache.get(*nv).sha256 == sha  # type: ignore[union-attr]
    # No dependency was fetched, so every pin of the manifest is reported missing, needed by the package.
    assert {(n, v) for n, v, _ in report.missing} == set(manifests[nv]["dependencies"].items())
    assert {by for _, _, by in report.missing} == {f"{nv[0]}#{nv[1]}"}
    # Only the package folder: no temporary folder survives a successful install.
    assert sorted(p.name for p in empty_cache.root.iterdir()) == [f"{nv[0]}#{nv[1]}"]


@shared
def test_reinstall_is_reported_as_already_present(empty_cache: PackageCache,
                                                   archives: dict[NV, Path]) -> None:
    nv = ("medcom.fhir.dk.xdsmetadata", "1.0.1")
    installer = Installer(empty_cache, registries=[])
    installer.install([str(archives[nv])], with_dependencies=False)
    # A marker inside the installed folder shows whether the second install replaced it.
    marker = empty_cache.root / f"{nv[0]}#{nv[1]}" / "marker"
    marker.write_text("first install")

    again = installer.install([str(archives[nv])], with_dependencies=False)

    assert again.installed == []
    assert nv_set(again.already) == {nv}
    assert marker.read_text() == "first install"
    assert [(p.name, p.version) for p in empty_cache.installed()] == [nv]


@shared
def test_install_folder_of_tgz(empty_cache: PackageCache, package_dir: Path,
                               manifests: dict[NV, dict[str, Any]]) -> None:
    report = Installer(empty_cache, registries=[]).install([str(package_dir)])

    assert nv_set(report.installed) == set(manifests)
    assert {(p.name, p.version) for p in empty_cache.installed()} == set(manifests)
    for nv in manifests:
        assert (empty_cache.root / f"{nv[0]}#{nv[1]}" / "package" / "package.json").is_file()
    # versions(): every installed version of a name, oldest first.
    for name in {n for n, _ in manifests}:
        assert empty_cache.versions(name) == sorted((v for n, v in manifests if n == name), key=version_tuple)
    assert empty_cache.versions("no.such.package") == []
    # Missing: exactly the pins no archive in the folder satisfies. Every MedCom and DK Core pin is there
    # (MedCom Core 2.4.0's terminology 1.7.0 too); only the HL7 packages findings.md names cannot be had.
    pinned = {(dep, m["name"], m["version"]) for m in manifests.values() for dep in m["dependencies"].items()}
    expected_missing = {(d[0], d[1], f"{n}#{v}") for d, n, v in pinned if d not in manifests}
    assert set(report.missing) == expected_missing
    assert ("medcom.fhir.dk.terminology", "1.7.0") in nv_set(report.installed)
    assert {n for n, _, _ in report.missing} <= UNOBTAINABLE

    again = Installer(empty_cache, registries=[]).install([str(package_dir)])
    assert again.installed == []
    assert nv_set(again.already) == set(manifests)


@shared
def test_install_unpacked_package_folder(tmp_path: Path, archives: dict[NV, Path],
                                         manifests: dict[NV, dict[str, Any]]) -> None:
    nv = ("medcom.fhir.dk.terminology", "2.0.2")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archives[nv], "r:gz") as tf:
        tf.extractall(unpacked, filter="data")
    cache = PackageCache(tmp_path / "cache")

    report = Installer(cache, registries=[]).install([str(unpacked)], with_dependencies=False)

    assert nv_set(report.installed) == {nv}
    pkg_dir = cache.root / f"{nv[0]}#{nv[1]}"
    assert json.loads((pkg_dir / "package" / "package.json").read_text(encoding="utf-8")) == manifests[nv]
    assert installed_files(pkg_dir) == archive_files(archives[nv])
    assert (unpacked / "package" / "package.json").is_file(), "the source folder must be copied, not moved"
    assert len(report.installed[0].sha256 or "") == 64

    again = Installer(cache, registries=[]).install([str(unpacked)], with_dependencies=False)
    assert nv_set(again.already) == {nv} and again.installed == []

    # The hash stands for the content: the same package with one file changed must hash differently.
    changed_manifest = {**manifests[nv], "description": "changed"}
    (unpacked / "package" / "package.json").write_text(json.dumps(changed_manifest))
    other = PackageCache(tmp_path / "other-cache")
    changed = Installer(other, registries=[]).install([str(unpacked)], with_dependencies=False)
    assert changed.installed[0].sha256 != report.installed[0].sha256


@shared
def test_install_by_name_from_local_folder(empty_cache: PackageCache, package_dir: Path,
                                           manifests: dict[NV, dict[str, Any]]) -> None:
    root = ("medcom.fhir.dk.document", "1.0.1")
    installer = Installer(empty_cache, sources=[package_dir], registries=[])
    report = installer.install(["medcom.fhir.dk.document#1.0.1"])

    expected, missing = dependency_closure(root, manifests)
    assert nv_set(report.installed) == expected
    # Only the pinned versions: Document 1.0.1 pulls MedCom Core 2.4.0 / DK Core 3.2.0, not 4.0.0 / 3.5.0.
    assert ("medcom.fhir.dk.core", "2.4.0") in expected and ("medcom.fhir.dk.core", "4.0.0") not in expected
    assert {(p.name, p.version) for p in empty_cache.installed()} == expected
    assert {(n, v) for n, v, _ in report.missing} == missing
    assert ("medcom.fhir.dk.terminology", "1.7.0") in expected  # MedCom Core 2.4.0's pin, published now

    again = installer.install(["medcom.fhir.dk.document#1.0.1"])
    assert again.installed == [] and nv_set(again.already) == {root}


@shared
def test_local_folder_finds_archive_by_its_package_json(tmp_path: Path, archives: dict[NV, Path]) -> None:
    # A download saved under another name is still found by NAME#VERSION (a symlink: nothing is copied).
    nv = ("medcom.fhir.dk.xdsmetadata", "1.0.1")
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "download.tgz").symlink_to(archives[nv])
    cache = PackageCache(tmp_path / "cache")

    installer = Installer(cache, sources=[folder], registries=[])
    report = installer.install([f"{nv[0]}#{nv[1]}"], with_dependencies=False)

    assert nv_set(report.installed) == {nv}


def test_unknown_name_without_registry_is_a_package_error(empty_cache: PackageCache, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"medcom\.fhir\.dk\.nothing#9\.9\.9"):
        Installer(empty_cache, sources=[tmp_path], registries=[]).install(["medcom.fhir.dk.nothing#9.9.9"])
    assert_cache_clean(empty_cache)


@pytest.mark.parametrize("spec", ["not a spec", "name#", "#1.0.0", "/no/such/file.tgz"])
def test_unusable_spec_is_a_package_error(empty_cache: PackageCache, spec: str) -> None:
    with pytest.raises(PackageError):
        Installer(empty_cache, registries=[]).install([spec])
    assert_cache_clean(empty_cache)


# -- 2. a FHIR package registry on loopback --------------------------------------------------------------

@dataclass
class Registry:
    """A FHIR/npm-style registry: GET /<name> → the versions with tarball URLs, GET the tarballs."""

    url: str
    tarballs: dict[str, dict[str, bytes]]
    requests: list[str] = field(default_factory=list)
    # path → (status, content type, body), answered instead of the normal response.
    overrides: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)

    def tarball_path(self, name: str, version: str) -> str:
        return f"/{name}/-/{name}-{version}.tgz"

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path in self.overrides:
            return self.overrides[path]
        parts = path.strip("/").split("/")
        if len(parts) == 1 and parts[0] in self.tarballs:
            name = parts[0]
            doc = {"name": name, "versions": {
                v: {"name": name, "version": v, "dist": {"tarball": self.url + self.tarball_path(name, v)}}
                for v in self.tarballs[name]}}
            return 200, "application/json", json.dumps(doc).encode()
        for name, versions in self.tarballs.items():
            for v, data in versions.items():
                if path == self.tarball_path(name, v):
                    return 200, "application/tar+gzip", data
        return 404, "application/json", b'{"error": "not found"}'


@pytest.fixture
def registry(archives: dict[NV, Path]) -> Iterator[Registry]:
    tarballs: dict[str, dict[str, bytes]] = {}
    for (name, version), path in archives.items():
        tarballs.setdefault(name, {})[version] = path.read_bytes()
    reg = Registry("", tarballs)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reg.requests.append(self.path)
            status, ctype, body = reg.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    reg.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield reg
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@shared
@network
def test_install_from_registry_with_dependencies(empty_cache: PackageCache, registry: Registry,
                                                 archives: dict[NV, Path],
                                                 manifests: dict[NV, dict[str, Any]]) -> None:
    report = Installer(empty_cache, registries=[registry.url]).install(["medcom.fhir.dk.notes#1.0.0"])

    # The brief's list, checked against the closure the package.json files give.
    expected = {NOTES, ("medcom.fhir.dk.document", "2.0.2"), ("medcom.fhir.dk.core", "4.0.0"),
                ("hl7.fhir.dk.core", "3.5.0"), ("medcom.fhir.dk.terminology", "2.0.2"),
                ("medcom.fhir.dk.xdsmetadata", "1.0.1")}
    closure, unavailable = dependency_closure(NOTES, manifests)
    assert closure == expected
    assert nv_set(report.installed) == expected
    assert {(p.name, p.version) for p in empty_cache.installed()} == expected
    # Each came from the registry, byte for byte.
    for nv in expected:
        assert registry.tarball_path(*nv) in registry.requests
        assert empty_cache.get(*nv).sha256 == hashlib.sha256(archives[nv].read_bytes()).hexdigest()  # type: ignore[union-attr]
    # The unobtainable ones are listed as missing (not an error), and nothing else is.
    assert {(n, v) for n, v, _ in report.missing} == unavailable
    assert {n for n, _, _ in report.missing} <= UNOBTAINABLE
    assert {"hl7.fhir.r4.core", "hl7.terminology.r4"} <= {n for n, _, _ in report.missing}
    assert "/hl7.fhir.r4.core" in registry.requests  # it was asked for and answered 404


@shared
@network
def test_registry_404_is_a_clear_package_error(empty_cache: PackageCache, registry: Registry) -> None:
    with pytest.raises(PackageError) as exc:
        Installer(empty_cache, registries=[registry.url]).install(["no.such.package#1.0.0"])
    msg = str(exc.value)
    assert "no.such.package#1.0.0" in msg and "404" in msg
    assert_cache_clean(empty_cache)


@shared
@network
def test_registry_without_that_version_is_a_package_error(empty_cache: PackageCache,
                                                          registry: Registry) -> None:
    with pytest.raises(PackageError, match=r"9\.9\.9"):
        Installer(empty_cache, registries=[registry.url]).install(["medcom.fhir.dk.notes#9.9.9"])
    assert_cache_clean(empty_cache)


@shared
@network
def test_registry_answering_html_is_a_package_error(empty_cache: PackageCache, registry: Registry) -> None:
    registry.overrides["/no.such.package"] = (200, "text/html", b"<html><body>Not found</body></html>")
    with pytest.raises(PackageError):
        Installer(empty_cache, registries=[registry.url]).install(["no.such.package#1.0.0"])
    assert_cache_clean(empty_cache)


@shared
@network
def test_cli_install_from_registry(tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str],
                                   manifests: dict[NV, dict[str, Any]]) -> None:
    cache = tmp_path / "cache"
    args = ["packages", "install", "medcom.fhir.dk.notes#1.0.0", "--registry", registry.url,
            "--cache", str(cache)]

    assert main(args) == 0
    out = capsys.readouterr().out
    expected, unavailable = dependency_closure(NOTES, manifests)
    for name, version in expected:
        assert f"installed  {name}#{version}" in out
    assert "package-missing" in out
    # One line per missing package: "  <name> <version>, <version>  (needed by …)".
    reported: dict[str, set[str]] = {}
    for line in out.split("package-missing", 1)[1].splitlines()[1:]:
        head = line.strip().split("  (", 1)[0]
        if "  (needed by " in line:
            name, _, versions = head.partition(" ")
            reported[name] = set(versions.split(", "))
    assert reported == {n: {v for m, v in unavailable if m == n} for n, _ in unavailable}

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "installed  " not in out
    assert "present    medcom.fhir.dk.notes#1.0.0" in out


@shared
@network
def test_cli_unknown_package_exits_2_without_traceback(tmp_path: Path, registry: Registry,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["packages", "install", "no.such.package#1.0.0", "--registry", registry.url,
                   "--cache", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert status == 2
    assert "no.such.package#1.0.0" in captured.err and "404" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@shared
@network
def test_cli_subprocess_unknown_package_exits_2_without_traceback(tmp_path: Path, registry: Registry) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kroniker", "packages", "install", "no.such.package#1.0.0",
         "--registry", registry.url, "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert proc.returncode == 2, proc.stderr
    assert "no.such.package#1.0.0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


# -- 3. package sets -------------------------------------------------------------------------------------

@shared
@pytest.mark.parametrize("root", [NOTES, CONDITIONLIST], ids=["notes", "conditionlist"])
def test_set_resolves_canonicals_within_its_pinned_dependencies(package_cache: PackageCache, root: NV,
                                                                manifests: dict[NV, dict[str, Any]]) -> None:
    pkg = package_cache.get(*root)
    assert pkg is not None
    pset = package_set(package_cache, pkg)
    assert isinstance(pset, PackageSet)
    # The Document version this standard pins, from its package.json (2.0.2 Notes, 1.0.1 ConditionList).
    pinned_document = manifests[root]["dependencies"]["medcom.fhir.dk.document"]

    sd = pset.resolve(DOCUMENT_PATIENT)
    assert sd is not None
    assert sd["url"] == DOCUMENT_PATIENT and sd["version"] == pinned_document
    owner = pset.package_of(DOCUMENT_PATIENT)
    assert owner is not None and (owner.name, owner.version) == ("medcom.fhir.dk.document", pinned_document)
    # A version suffix does not reach outside the set.
    assert pset.resolve(f"{DOCUMENT_PATIENT}|9.9.9") == sd

    # One version per package, and the root's pins wherever the pinned version is installed.
    names = [p.name for p in pset.packages]
    assert len(names) == len(set(names)), names
    for p in pset.packages[1:]:
        pin = manifests[root]["dependencies"].get(p.name)
        if pin is not None and (p.name, pin) in manifests:
            assert p.version == pin, p


@shared
def test_notes_and_conditionlist_resolve_the_same_canonical_differently(package_cache: PackageCache) -> None:
    notes = package_set(package_cache, package_cache.get(*NOTES))  # type: ignore[arg-type]
    cl = package_set(package_cache, package_cache.get(*CONDITIONLIST))  # type: ignore[arg-type]
    a, b = notes.resolve(DOCUMENT_PATIENT), cl.resolve(DOCUMENT_PATIENT)
    assert a is not None and b is not None
    assert (a["version"], b["version"]) == ("2.0.2", "1.0.1")
    assert {(p.name, p.version) for p in notes.packages}.isdisjoint(
        {(p.name, p.version) for p in cl.packages if p.name != "medcom.fhir.dk.xdsmetadata"})


@pytest.fixture(scope="module")
def cache_without_core_terminology_pin(tmp_path_factory: pytest.TempPathFactory, archives: dict[NV, Path],
                                       manifests: dict[NV, dict[str, Any]]) -> PackageCache:
    """Every archive but the terminology MedCom Core 2.4.0 pins: the fallback path, made by the test."""
    pin = ("medcom.fhir.dk.terminology", manifests[("medcom.fhir.dk.core", "2.4.0")]["dependencies"]
           ["medcom.fhir.dk.terminology"])
    cache = PackageCache(tmp_path_factory.mktemp("without-pin"))
    Installer(cache, registries=[]).install([str(p) for nv, p in archives.items() if nv != pin],
                                            with_dependencies=False)
    assert cache.get(*pin) is None
    return cache


@shared
def test_conditionlist_set_reads_the_terminology_its_root_pins(package_cache: PackageCache,
                                                               manifests: dict[NV, dict[str, Any]]) -> None:
    # Core 2.4.0 pins 1.7.0, ConditionList 1.0.1 pins 1.8.1; both are installed now. The root's pin wins (as npm
    # and the HL7 validator resolve a package set), and with both versions at hand there is nothing to warn of.
    core_pin = manifests[("medcom.fhir.dk.core", "2.4.0")]["dependencies"]["medcom.fhir.dk.terminology"]
    root_pin = manifests[CONDITIONLIST]["dependencies"]["medcom.fhir.dk.terminology"]
    assert (core_pin, root_pin) == ("1.7.0", "1.8.1")
    assert package_cache.get("medcom.fhir.dk.terminology", core_pin) is not None

    pset = package_set(package_cache, package_cache.get(*CONDITIONLIST))  # type: ignore[arg-type]

    assert [p.version for p in pset.packages if p.name == "medcom.fhir.dk.terminology"] == [root_pin]
    assert [n for n in pset.notes if n.severity != "information"] == []


@shared
def test_conditionlist_set_falls_back_to_terminology_it_pins(cache_without_core_terminology_pin: PackageCache,
                                                             manifests: dict[NV, dict[str, Any]]) -> None:
    cache = cache_without_core_terminology_pin
    core_pin = manifests[("medcom.fhir.dk.core", "2.4.0")]["dependencies"]["medcom.fhir.dk.terminology"]
    root_pin = manifests[CONDITIONLIST]["dependencies"]["medcom.fhir.dk.terminology"]

    pset = package_set(cache, cache.get(*CONDITIONLIST))  # type: ignore[arg-type]

    assert [p.version for p in pset.packages if p.name == "medcom.fhir.dk.terminology"] == [root_pin]
    fallbacks = [n for n in pset.notes if n.key == "package-fallback"]
    assert len(fallbacks) == 1
    note = fallbacks[0]
    assert note.severity == "warning"
    assert note.params["dependency"] == f"medcom.fhir.dk.terminology#{core_pin}"
    assert note.params["used"] == root_pin
    assert note.params["package"] == "medcom.fhir.dk.core#2.4.0"


@shared
def test_notes_set_has_no_warnings_only_unobtainable_packages(package_cache: PackageCache) -> None:
    # Every MedCom/DK pin of Notes 1.0.0 and its dependencies is installed and they agree, so the only notes
    # are about the packages findings.md says cannot be had, and those are information, not warnings.
    pset = package_set(package_cache, package_cache.get(*NOTES))  # type: ignore[arg-type]
    assert pset.notes, "the unobtainable HL7 packages must be mentioned"
    assert all(n.severity == "information" for n in pset.notes), pset.notes
    assert {n.params["dependency"].split("#")[0] for n in pset.notes} <= UNOBTAINABLE


@shared
def test_validation_report_carries_the_fallback_warning(cache_without_core_terminology_pin: PackageCache) -> None:
    report = Validator(cache_without_core_terminology_pin).validate(json.dumps(diagnosis_card()).encode())
    assert report.standard is not None and (report.standard.name, report.standard.version) == CONDITIONLIST
    hits = [f for f in report.findings if f.code == "package-missing"
            and f.params.get("dependency") == "medcom.fhir.dk.terminology#1.7.0"]
    assert len(hits) == 1 and hits[0].severity == Severity.WARNING


@shared
def test_a_diagnosis_card_validates_without_package_warnings(package_cache: PackageCache) -> None:
    report = Validator(package_cache).validate(json.dumps(diagnosis_card()).encode())
    assert [f for f in report.findings if f.code.startswith("package-")] == []


@shared
def test_package_set_sees_dependencies_installed_later(empty_cache: PackageCache, archives: dict[NV, Path],
                                                       package_dir: Path) -> None:
    Installer(empty_cache, registries=[]).install([str(archives[NOTES])], with_dependencies=False)
    before = package_set(empty_cache, empty_cache.get(*NOTES))  # type: ignore[arg-type]
    assert before.resolve(DOCUMENT_PATIENT) is None

    Installer(empty_cache, sources=[package_dir], registries=[]).install([f"{NOTES[0]}#{NOTES[1]}"])
    after = package_set(empty_cache, empty_cache.get(*NOTES))  # type: ignore[arg-type]

    sd = after.resolve(DOCUMENT_PATIENT)
    assert sd is not None and sd["version"] == "2.0.2"


# -- 4. which profile version applies (findings.md) -------------------------------------------------------

@pytest.mark.parametrize(("available", "requested", "expected"), [
    # url|x.y.z → exactly that version, no note.
    (["1.0.0", "1.0.1", "1.1.0"], "1.0.0", ("1.0.0", None)),
    # url|x.y.z not installed → the highest x.y.* with a warning ("profile-version-other").
    (["1.0.1", "1.0.3", "1.1.0"], "1.0.2", ("1.0.3", "profile-version-other")),
    # url|x.y → the highest x.y.*, compared as numbers (1.0.10 > 1.0.9), no note.
    (["1.0.9", "1.0.10", "1.1.0"], "1.0", ("1.0.10", None)),
    # a pre-release is below its release
    (["1.0.0-ballot", "1.0.0"], "1.0", ("1.0.0", None)),
    # no version → the highest installed, with an information note.
    (["1.9.0", "1.10.0", "1.2.0"], None, ("1.10.0", "profile-version-none")),
    # something of the major version, but not that minor: still that major (only no major is unknown).
    (["1.0.0", "1.2.0"], "1.1.0", ("1.2.0", "profile-version-other")),
    # nothing of that major version → None, which identify() turns into profile-unknown.
    (["1.0.0", "1.5.2"], "2.0", (None, None)),
    (["1.0.0"], "2.0.0", (None, None)),
    (["10.0.0"], "1.0", (None, None)),
    ([], "1.0.0", (None, None)),
])
def test_choose_version(available: list[str], requested: str | None,
                        expected: tuple[str | None, str | None]) -> None:
    assert choose_version(available, requested) == expected


@shared
@pytest.mark.parametrize(("suffix", "code", "severity"), [
    ("|1.0.0", None, None),                      # exact: nothing to say
    ("|1.0", None, None),                        # x.y: highest 1.0.*, nothing to say
    ("", "profile-version", Severity.INFORMATION),  # unversioned: highest, information
    ("|1.0.7", "profile-version", Severity.WARNING),  # not installed: highest 1.0.*, warning
    ("|2.0", "profile-unknown", Severity.ERROR),  # nothing of major 2
], ids=["exact", "minor", "none", "other-patch", "unknown-major"])
def test_composition_profile_version_end_to_end(package_cache: PackageCache, suffix: str, code: str | None,
                                                 severity: Severity | None) -> None:
    doc = shared_note()
    doc["entry"][0]["resource"]["meta"]["profile"] = [NOTES_COMPOSITION + suffix]

    report = Validator(package_cache).validate(json.dumps(doc).encode())

    about_version = [f for f in report.findings if f.code in ("profile-version", "profile-unknown")
                     and f.location == "Bundle.entry[0].resource.meta.profile"]
    if code is None:
        assert about_version == []
    else:
        assert [(f.code, f.severity) for f in about_version] == [(code, severity)]
    if code == "profile-unknown":
        # An error, and the rest of the document is still read with the newest installed version.
        assert not report.valid and report.standard is not None
        assert (report.standard.name, report.standard.version) == NOTES
        assert "medcom.fhir.dk.notes" in str(about_version[0].params.get("package"))
    else:
        assert report.standard is not None and (report.standard.name, report.standard.version) == NOTES
    if code == "profile-version":
        assert about_version[0].params["used"] == f"{NOTES[0]}#{NOTES[1]}"


# -- 5. hostile and broken archives ----------------------------------------------------------------------

def make_tgz(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


MANIFEST = ("package/package.json", json.dumps({"name": "evil.package", "version": "1.0.0"}).encode())


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("member", ["../evil", "package/../../evil", "ABSOLUTE"])
def test_archive_member_outside_the_package_is_refused(tmp_path: Path, member: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = PackageCache(outside / "cache")
    # An absolute member aims straight at a file next to the cache.
    name = str(outside / "evil") if member == "ABSOLUTE" else member
    data = make_tgz([MANIFEST, (name, b"pwned"), ("package/ok.json", b"{}")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert name in tf.getnames()  # the archive really carries the hostile name

    with pytest.raises(PackageError, match="outside"):
        install_tgz(cache, data, "evil.tgz")

    assert files_under(outside) <= {"cache"}, "something was written outside the cache"
    assert_cache_clean(cache)
    assert not (tmp_path / "evil").exists()


def test_symlink_member_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = PackageCache(tmp_path / "cache")
    link = tarfile.TarInfo("package/link")
    link.type = tarfile.SYMTYPE
    link.linkname = str(outside)
    data = make_tgz([MANIFEST, link, ("package/link/pwned", b"pwned")])

    # Refusing the archive or installing without the link are both safe; writing through the link is not.
    try:
        pkg, _ = install_tgz(cache, data, "link.tgz")
    except PackageError:
        assert_cache_clean(cache)
    else:
        assert not (pkg.path / "package" / "link").is_symlink()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("data", [b"", b"this is not an archive\n" * 20, b"\x1f\x8b\x08\x00garbage"],
                         ids=["empty", "text", "bad-gzip"])
def test_not_a_tgz_is_a_package_error(empty_cache: PackageCache, data: bytes) -> None:
    with pytest.raises(PackageError):
        install_tgz(empty_cache, data, "junk.tgz")
    assert_cache_clean(empty_cache)


@shared
def test_truncated_tgz_is_a_package_error(empty_cache: PackageCache, archives: dict[NV, Path]) -> None:
    data = archives[NOTES].read_bytes()
    with pytest.raises(PackageError):
        install_tgz(empty_cache, data[: len(data) // 2], "truncated.tgz")
    assert_cache_clean(empty_cache)


def test_not_a_tgz_file_via_installer(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tgz"
    junk.write_text("not gzip")
    cache = PackageCache(tmp_path / "cache")
    with pytest.raises(PackageError, match=r"junk\.tgz"):
        Installer(cache, registries=[]).install([str(junk)])
    assert_cache_clean(cache)


@pytest.mark.parametrize("members", [
    [("package/other.json", b"{}")],
    [("package.json", MANIFEST[1])],  # at the top, not under package/
    [("package/package.json", b"{not json")],
    [("package/package.json", b'{"name": "no.version"}')],
    [("package/package.json", b'{"name": "../escape", "version": "1.0.0"}')],
], ids=["no-manifest", "manifest-at-top", "manifest-not-json", "no-version", "bad-name"])
def test_archive_without_usable_manifest_is_a_package_error(empty_cache: PackageCache,
                                                           members: list[tuple[str, bytes]]) -> None:
    with pytest.raises(PackageError):
        install_tgz(empty_cache, make_tgz(members), "broken.tgz")  # type: ignore[arg-type]
    assert_cache_clean(empty_cache)


def test_broken_left_over_package_folder_is_not_an_os_error(empty_cache: PackageCache) -> None:
    broken = empty_cache.root / "evil.package#1.0.0" / "package"
    broken.mkdir(parents=True)
    (broken / "half.json").write_text("{}")
    data = make_tgz([MANIFEST, ("package/ok.json", b"{}")])
    try:
        pkg, new = install_tgz(empty_cache, data, "again.tgz")
    except PackageError:
        return
    assert new and (pkg.path / "package" / "package.json").is_file()


def test_failure_in_folder_install_leaves_no_temporary_folder(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a-evil.tgz").write_bytes(make_tgz([MANIFEST, ("../evil", b"x")]))
    cache = PackageCache(tmp_path / "cache")
    with pytest.raises(PackageError):
        Installer(cache, registries=[]).install([str(folder)])
    assert_cache_clean(cache)
    assert not (tmp_path / "evil").exists()


# -- 6. kroniker packages list ---------------------------------------------------------------------------

@pytest.fixture
def notes_cache(tmp_path: Path, package_dir: Path) -> PackageCache:
    """Notes 1.0.0 with its MedCom/DK dependencies, taken from the local folder."""
    cache = PackageCache(tmp_path / "list-cache")
    Installer(cache, sources=[package_dir], registries=[]).install([f"{NOTES[0]}#{NOTES[1]}"])
    return cache


@shared
def test_cli_list_json(notes_cache: PackageCache, archives: dict[NV, Path],
                       manifests: dict[NV, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["packages", "list", "--cache", str(notes_cache.root), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)

    expected, _ = dependency_closure(NOTES, manifests)
    assert {(p["name"], p["version"]) for p in listed} == expected
    for p in listed:
        nv = (p["name"], p["version"])
        assert p["sha256"] == hashlib.sha256(archives[nv].read_bytes()).hexdigest()
        assert p["dependencies"] == manifests[nv]["dependencies"]
        assert Path(p["path"]) == notes_cache.root / f"{nv[0]}#{nv[1]}"


@shared
def test_cli_list_text_shows_sha256_and_missing(notes_cache: PackageCache, archives: dict[NV, Path],
                                                manifests: dict[NV, dict[str, Any]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["packages", "list", "--cache", str(notes_cache.root)]) == 0
    lines = capsys.readouterr().out.splitlines()

    expected, _ = dependency_closure(NOTES, manifests)
    for nv in expected:
        line = next((ln for ln in lines if f"{nv[0]}#{nv[1]} " in ln), None)
        assert line is not None, f"{nv} not listed"
        assert "sha256:" + hashlib.sha256(archives[nv].read_bytes()).hexdigest()[:12] in line
        # The dependencies that are not installed are named on the package's own line, the installed ones not.
        for dep in manifests[nv]["dependencies"].items():
            assert (f"{dep[0]}#{dep[1]}" in line) == (dep not in expected), (nv, dep, line)


def test_cli_list_empty_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "nothing-here"
    assert main(["packages", "list", "--cache", str(cache)]) == 0
    assert str(cache) in capsys.readouterr().out
    assert main(["packages", "list", "--cache", str(cache), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@shared
def test_cli_subprocess_install_then_list(tmp_path: Path, archives: dict[NV, Path]) -> None:
    cache = tmp_path / "cache"
    tgz = archives[("medcom.fhir.dk.xdsmetadata", "1.0.1")]
    run = [sys.executable, "-m", "kroniker", "packages"]
    inst = subprocess.run([*run, "install", str(tgz), "--no-deps", "--cache", str(cache)],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert inst.returncode == 0, inst.stderr
    assert "installed  medcom.fhir.dk.xdsmetadata#1.0.1" in inst.stdout

    ls = subprocess.run([*run, "list", "--cache", str(cache), "--format", "json"],
                        capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert ls.returncode == 0, ls.stderr
    assert [(p["name"], p["version"], p["sha256"]) for p in json.loads(ls.stdout)] == [
        ("medcom.fhir.dk.xdsmetadata", "1.0.1", hashlib.sha256(tgz.read_bytes()).hexdigest())]
