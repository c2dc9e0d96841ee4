"""Session records: what was tested (inputs with their sha256, target, versions), when, every request and answer,
and the results; a rerun replays a record (or repeats it live) and must give the same results."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kroniker import __version__
from kroniker.conformance import features as feature_files
from kroniker.conformance import requirements as reqs
from kroniker.conformance.document_steps import VendorDocument, findings_of
from kroniker.conformance.runner import Case, Progress, document_cases, requirement_results, run, server_cases
from kroniker.conformance.steps import KeyedError, Target, os_problem

FORMAT = "kroniker-conformance-session/1"
SERVER, DOCUMENTS = "server", "documents"
MAX_RECORD_BYTES = 512 * 1024 * 1024


class RecordError(KeyedError):
    """The record cannot be read or is not a kroniker conformance session."""


def new_seed() -> int:
    return random.SystemRandom().randrange(2**31)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _packages(cache: Path | None) -> list[dict[str, str]]:
    from kroniker.validators.packages import PackageCache

    return [{"name": p.name, "version": p.version, "sha256": p.sha256} for p in PackageCache(cache).installed()]


def plan(suite: str, documents: list[VendorDocument] | None = None) -> tuple[list[Any], list[Case]]:
    scenarios = feature_files.load_all()
    if suite == DOCUMENTS:
        chosen = feature_files.documents_suite(scenarios)
        return chosen, document_cases(chosen, documents or [])
    chosen = feature_files.server_suite(scenarios)
    return chosen, server_cases(chosen)


def validator_for(cache: Path | None) -> Callable[[bytes], list[dict[str, Any]]]:
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.validate import Validator

    validator = Validator(PackageCache(cache))
    return lambda data: findings_of(validator.validate(data))


def package_profile_for(cache: Path | None) -> Callable[[bytes], str | None]:
    """The installed note profile of the low back pain package (its event code is the package's code), if any:
    without it a package note would be validated as a plain Shared Note."""
    from kroniker.conformance.documents import PACKAGE_CODE
    from kroniker.validators.package_notes import package_profiles
    from kroniker.validators.packages import PackageCache

    packages = PackageCache(cache)

    def profile(_data: bytes) -> str | None:
        for standard in packages.installed():
            if standard.name == "medcom.fhir.dk.notes":
                for p in package_profiles(packages, standard):
                    if PACKAGE_CODE in p.codes:
                        return p.url
        return None
    return profile


def execute(suite: str, *, target: Target | None = None, documents: list[VendorDocument] | None = None,
            folder: Path | None = None, cache: Path | None = None, seed: int | None = None,
            replay: dict[str, Any] | None = None, progress: Callable[[int], Progress] | None = None
            ) -> dict[str, Any]:
    """Run the suite and return its session record."""
    catalogue = reqs.load()
    seed = new_seed() if seed is None else seed
    _, cases = plan(suite, documents)
    validate = validator_for(cache) if suite == DOCUMENTS and replay is None else None
    profile = package_profile_for(cache) if suite == DOCUMENTS and replay is None else None
    started_at, started = _now(), time.perf_counter()
    tick = progress(len(cases)) if progress is not None else None
    results = run(cases, catalogue, target=target, seed=seed, validate=validate, package_profile=profile,
                  replay={c["id"]: c for c in replay["cases"]} if replay is not None else None, progress=tick)
    record: dict[str, Any] = {
        "format": FORMAT,
        "kroniker": __version__,
        "suite": suite,
        "started": started_at,
        "finished": _now(),
        "seconds": round(time.perf_counter() - started, 3),
        "seed": seed,
        "target": (replay["target"] if replay is not None else target.describe() if target is not None else
                   {"kind": "documents", "folder": str(folder) if folder else None}),
        "inputs": {
            "requirements": {"version": catalogue.version, "sha256": catalogue.sha256},
            "features": feature_files.digest(),
            "documents": (replay["inputs"].get("documents", []) if replay is not None else
                          [{"name": d.name, "sha256": d.sha256, "kind": d.kind} for d in documents or []]),
        },
        "packages": (replay or {}).get("packages") if replay is not None else
        (_packages(cache) if suite == DOCUMENTS or (target is not None and target.describe()["kind"] == "local")
         else []),
        "cases": results,
        "requirements": requirement_results(catalogue, feature_files.load_all(), results),
    }
    if replay is not None:
        record["replayed"] = {"started": replay.get("started"), "kroniker": replay.get("kroniker")}
    record["summary"] = summary(record)
    return record


def summary(record: dict[str, Any]) -> dict[str, Any]:
    def count(items: list[dict[str, Any]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in items:
            out[i["status"]] = out.get(i["status"], 0) + 1
        return dict(sorted(out.items()))

    return {"cases": count(record["cases"]), "requirements": count(record["requirements"]),
            "passed": all(c["status"] == "passed" and not c.get("broken") for c in record["cases"])}


def results(record: dict[str, Any]) -> dict[str, Any]:
    """The result part of a record: what a rerun must reproduce (no times, no evidence)."""
    return {
        "suite": record["suite"],
        "cases": [{k: c.get(k) for k in ("id", "status", "steps", "verdicts", "broken", "notes", "requirements")}
                  for c in record["cases"]],
        "requirements": record["requirements"],
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Where two records' results differ (empty: identical)."""
    ra, rb = results(a), results(b)
    out = []
    cases_a, cases_b = {c["id"]: c for c in ra["cases"]}, {c["id"]: c for c in rb["cases"]}
    for cid in sorted(set(cases_a) | set(cases_b)):
        if cases_a.get(cid) != cases_b.get(cid):
            sa, sb = (cases_a.get(cid) or {}).get("status"), (cases_b.get(cid) or {}).get("status")
            out.append(f"case {cid}: {sa} → {sb}" if sa != sb else f"case {cid}: steps or verdicts differ")
    reqs_a, reqs_b = {r["id"]: r for r in ra["requirements"]}, {r["id"]: r for r in rb["requirements"]}
    for rid in sorted(set(reqs_a) | set(reqs_b)):
        if reqs_a.get(rid) != reqs_b.get(rid):
            out.append(f"requirement {rid}: {(reqs_a.get(rid) or {}).get('status')} → "
                       f"{(reqs_b.get(rid) or {}).get('status')}")
    if ra["suite"] != rb["suite"]:
        out.append(f"suite: {ra['suite']} → {rb['suite']}")
    return out


SIGNATURE_TAG = b"kroniker-conformance-session/1\n"  # what the signature is of: this tag, then the canonical JSON


def key_path() -> Path:
    """The key that signs session records: $KRONIKER_HOME/conformance.key (made on first use, mode 0600)."""
    from kroniker.settings import home

    return home() / "conformance.key"


def _signature(key: bytes, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hmac.new(key, SIGNATURE_TAG + canonical, hashlib.sha256).hexdigest()


def sign(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The record with its signature: HMAC-SHA256 over everything else, and the key's id (never the key)."""
    from kroniker.reference_server.audit import key_id

    body = {k: v for k, v in record.items() if k != "signature"}
    return {**body, "signature": {"alg": "HMAC-SHA256", "key_id": key_id(key), "value": _signature(key, body)}}


class SignatureError(KeyedError):
    """The record is not signed, signed with another key, or changed since it was signed (exit 1)."""


def verify(record: dict[str, Any], key: bytes, path: Path) -> None:
    from kroniker.reference_server.audit import key_id

    sig = record.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("value"), str):
        raise SignatureError("record-unsigned", path=path)
    if sig.get("key_id") != key_id(key):
        raise SignatureError("record-other-key", path=path, theirs=sig.get("key_id"), ours=key_id(key))
    if not hmac.compare_digest(sig["value"], _signature(key, record)):
        raise SignatureError("record-tampered", path=path)


def write(record: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise RecordError("record-too-large", path=path, limit=MAX_RECORD_BYTES // 2**20)
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError("record-unreadable", path=path, problem_key=os_problem(exc)) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise RecordError("record-not-session", path=path, format=FORMAT)
    for key in ("suite", "seed", "cases", "requirements", "inputs", "target"):
        if key not in record:
            raise RecordError("record-lacks", path=path, field=key)
    return record


def changed_inputs(record: dict[str, Any]) -> list[str]:
    """Inputs of the record that differ from this installation's (the rerun may then differ for that reason)."""
    out = []
    catalogue = reqs.load()
    if record["inputs"].get("requirements", {}).get("sha256") != catalogue.sha256:
        out.append("requirements.json")
    now = feature_files.digest()
    out += [uri for uri, sha in record["inputs"].get("features", {}).items() if now.get(uri) != sha]
    return out
