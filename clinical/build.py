"""Building kroniker's own FHIR packages (FHIR NPM .tgz) from their source folders under profiles/packages/.

A source folder holds `package.json` (name, version, canonical, dependencies), one JSON file per resource, and
optionally `example/` (instances, shipped as package/example/ and not indexed, as FHIR packages do).
An Attachment whose `url` names a file beside the resource (a rule set) is embedded into the resource (`data`,
`size`, `hash`), so the package carries it and the cache needs nothing else. The archive is reproducible: the
same sources give the same bytes (sorted members, fixed times and owners).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

_INDEXED = ("url", "version", "kind", "type")


class BuildError(Exception):
    """A source folder cannot be built; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Built:
    name: str
    version: str
    path: Path
    resources: int


def source_folders() -> list[Path]:
    """The package sources shipped with kroniker (profiles/packages/*), in name order."""
    root = Path(str(resources.files("kroniker.profiles").joinpath("packages")))
    return sorted(p for p in root.iterdir() if (p / "package.json").is_file()) if root.is_dir() else []


def build(source: Path, out_dir: Path) -> Built:
    """Build one package from its source folder into out_dir/<name>-<version>.tgz."""
    manifest = _read_json(source / "package.json")
    name, version, canonical = (manifest.get(k) for k in ("name", "version", "canonical"))
    if not (isinstance(name, str) and isinstance(version, str) and isinstance(canonical, str)):
        raise BuildError(f"{source / 'package.json'}: needs name, version and canonical")
    files: dict[str, bytes] = {}
    index: list[dict[str, Any]] = []
    urls: dict[str, str] = {}
    found = list(_resources(source))
    embedded = {p.name for p, _ in found} | {"package.json"}
    for path, res in found:
        embedded.update(_embed_attachments(res, source, path))
    for path, res in found:
        _check(res, path, canonical, version, urls)
        filename = f"{res['resourceType']}-{res['id']}.json"
        if filename in files:
            raise BuildError(f"{path}: a second {res['resourceType']} with id {res['id']}")
        res = _embedded(res, source)
        files[filename] = _dump(res)
        index.append({"filename": filename, "resourceType": res["resourceType"], "id": res["id"],
                      **{k: res[k] for k in _INDEXED if isinstance(res.get(k), str)}})
    strays = sorted(p.name for p in source.glob("*.json") if p.name not in embedded)
    if strays:
        raise BuildError(f"{source}: neither a resource nor embedded by one: {', '.join(strays)}")
    for path in sorted((source / "example").glob("*.json")):
        files[f"example/{path.name}"] = _dump(_read_json(path))  # examples: shipped, not indexed
    files["package.json"] = _dump(manifest)
    files[".index.json"] = _dump({"index-version": 1, "files": sorted(index, key=lambda e: e["filename"])})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}-{version}.tgz"
    target.write_bytes(_tgz(files))
    return Built(name, version, target, len(index))


def _resources(source: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(source.glob("*.json")):
        if path.name == "package.json":
            continue
        data = _read_json(path)
        if "resourceType" in data:
            yield path, data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BuildError(f"{path}: not a JSON object")
    return data


def _check(res: dict[str, Any], path: Path, canonical: str, version: str, urls: dict[str, str]) -> None:
    if not isinstance(res.get("id"), str) or not res["id"]:
        raise BuildError(f"{path}: no id")
    url = res.get("url")
    if url is None:
        return
    if not isinstance(url, str) or not url.startswith(canonical + "/"):
        raise BuildError(f"{path}: url {url!r} is not under the package's canonical {canonical}")
    if res.get("version") != version:
        raise BuildError(f"{path}: version {res.get('version')!r}, but the package is {version}")
    if url in urls:
        raise BuildError(f"{path}: url {url} is also defined by {urls[url]}")
    urls[url] = path.name


def _attachments(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "contentType" in node and isinstance(node.get("url"), str):
            yield node
        for v in node.values():
            yield from _attachments(v)
    elif isinstance(node, list):
        for v in node:
            yield from _attachments(v)


def _embed_attachments(res: dict[str, Any], source: Path, path: Path) -> set[str]:
    names = set()
    for att in _attachments(res):
        target = source / att["url"]
        if "/" not in att["url"] and target.is_file():
            names.add(target.name)
        elif "://" not in att["url"]:
            raise BuildError(f"{path}: attachment {att['url']!r} is not a file beside it")
    return names


def _embedded(res: dict[str, Any], source: Path) -> dict[str, Any]:
    res = json.loads(json.dumps(res))  # a copy: the attachments are filled in
    for att in _attachments(res):
        target = source / att["url"]
        if "://" in att["url"] or not target.is_file():
            continue
        data = _dump(_read_json(target))
        att.pop("url")
        att.update({"data": base64.b64encode(data).decode("ascii"), "size": len(data),
                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")})  # FHIR: SHA-1
    return res


def _dump(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _tgz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name in sorted(files):
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()
