"""Benchmark: how fast is full validation, against json.loads alone and fhir.resources' model validation
alone on the same documents, measured in the same run (ratios, since the machine is noisy).

    python bench/validate.py [--seconds 3] [--shared ../shared] [--batch 10000]

Prints, in one run:
- documents per second for full validation (one process, and two processes), json.loads alone and
  fhir.resources' structural model validation alone, on MedCom's Shared Notes and ConditionList IG
  examples and a realistic note of our own (tests/builders.py, about 4 KB of note text), and the ratios;
  every document is made distinct (so no cache of the validator's can remember an earlier answer);
- how many invariants are evaluated in Python (base invariants), compiled from FHIRPath, or left to
  fhirpathpy;
- `kroniker validate one.json` as a fresh process (plan cache present): wall time and peak RSS;
- `kroniker validate --jobs 2` over a folder of N MedCom-sized documents: wall time.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _per_second(fn: Callable[[], int], seconds: float) -> float:
    """Documents per second: the median of five rounds of about seconds/5 each (fn returns documents done)."""
    fn()  # warm
    rounds = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / 5
        while True:
            n += fn()
            now = time.perf_counter()
            if now >= deadline:
                break
        rounds.append(n / (now - start))
    return statistics.median(rounds)


def _distinct(doc: dict[str, Any], i: int) -> bytes:
    """The same document with every narrative and the note's text made unique (defeats memoisation)."""
    d = json.loads(json.dumps(doc))
    for e in d.get("entry", []):
        res = e.get("resource", {})
        text = res.get("text")
        if isinstance(text, dict) and isinstance(text.get("div"), str):
            text["div"] = text["div"].replace("</div>", f"<p>{i}</p></div>", 1) if text["div"].endswith(
                "</div>") else text["div"]
        for ext in res.get("extension", []):
            att = ext.get("valueAttachment") if isinstance(ext, dict) else None
            if isinstance(att, dict) and isinstance(att.get("data"), str):
                note = base64.b64decode(att["data"]).decode("utf-8") + f"<p>{i}</p>"
                att["data"] = base64.b64encode(note.encode("utf-8")).decode("ascii")
    return json.dumps(d, ensure_ascii=False).encode("utf-8")


def _documents(shared: Path, variants: int) -> dict[str, list[bytes]]:
    from tests.builders import shared_note

    originals: dict[str, list[dict[str, Any]]] = {"notes (MedCom IG)": [], "conditionlist (MedCom IG)": []}
    for tgz, key in (("medcom.fhir.dk.notes-1.0.0.tgz", "notes (MedCom IG)"),
                     ("medcom.fhir.dk.conditionlist-1.0.1.tgz", "conditionlist (MedCom IG)")):
        with tarfile.open(shared / "fhir-packages" / tgz) as tf:
            for m in tf.getmembers():
                if m.name.startswith("package/example/Bundle-"):
                    originals[key].append(json.loads(tf.extractfile(m).read()))  # type: ignore[union-attr]
    paragraph = ("<p>Patienten har haft lænderygsmerter i tre år. Smerterne er stabile, NRS 4/10 i hvile og 6/10 "
                 "ved længere tids stående arbejde. Går dagligt, cykler til arbejde. <b>Mål:</b> fortsætte.</p>")
    originals["own note (4 KB text)"] = [shared_note(paragraph * (4096 // len(paragraph) + 1))]
    return {k: [_distinct(d, i) for i in range(variants) for d in docs] for k, docs in originals.items()}


_WORKER: Any = None


def _init_worker(cache: str) -> None:
    global _WORKER
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.validate import Validator

    _WORKER = Validator(PackageCache(cache))


def _validate_chunk(docs: list[bytes]) -> int:
    for d in docs:
        _WORKER.validate(d)
    return len(docs)


def _invariant_counts(validator: Any) -> tuple[int, int, int, list[str]]:
    """(Python, compiled, fhirpathpy) over every invariant in the Notes and ConditionList package sets."""
    from kroniker.validators.fhirpath import Unsupported, compile_expression
    from kroniker.validators.invariants import PYTHON_INVARIANTS

    seen: dict[str, str] = {}
    for pkg in validator.cache.installed():
        if pkg.name not in ("medcom.fhir.dk.notes", "medcom.fhir.dk.conditionlist"):
            continue
        from kroniker.validators.standards import package_set

        for sd in package_set(validator.cache, pkg).structure_definitions():
            for e in (sd.get("snapshot") or {}).get("element", []):
                for c in e.get("constraint", []):
                    if c["key"] != "ele-1" and c.get("expression"):
                        seen.setdefault(c["key"], c["expression"])
    py = compiled = 0
    fallback = []
    for key, expr in seen.items():
        if key in PYTHON_INVARIANTS:
            py += 1
            continue
        try:
            compile_expression(expr)
            compiled += 1
        except Unsupported:
            fallback.append(key)
    return py, compiled, len(fallback), sorted(fallback)


def _cli_one_file(cache: Path, home: Path, doc: Path) -> tuple[float, int]:
    env = {**os.environ, "KRONIKER_FHIR_PACKAGES": str(cache), "KRONIKER_HOME": str(home)}
    cmd = [sys.executable, "-m", "kroniker", "validate", str(doc)]
    subprocess.run(cmd, env=env, capture_output=True, check=False)  # fills the plan cache
    # A small wrapper starts the command and reads its peak RSS: forked straight from this (large) process,
    # the child's peak would count the pages it shared with us before exec.
    wrapper = [sys.executable, "-c", "import os, subprocess, sys\n"
               "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
               "print(os.wait4(p.pid, 0)[2].ru_maxrss)", *cmd]
    walls = []
    peak = 0
    for _ in range(5):
        start = time.perf_counter()
        out = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=False).stdout
        walls.append(time.perf_counter() - start)
        peak = max(peak, int(out.strip() or 0))
    return statistics.median(walls), peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--batch", type=int, default=10_000, help="documents for the --jobs 2 CLI run (0: skip)")
    args = ap.parse_args()
    if not (args.shared / "fhir-packages").is_dir():
        print(f"needs MedCom's packages in {args.shared}/fhir-packages", file=sys.stderr)
        return 2

    from fhir.resources.R4B.bundle import Bundle

    from kroniker.packages import Installer
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.validate import Validator

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        os.environ["KRONIKER_HOME"] = str(tmpdir / "home")
        cache = PackageCache(tmpdir / "packages")
        Installer(cache, registries=[]).install([str(args.shared / "fhir-packages")])
        validator = Validator(cache)
        docs = _documents(args.shared, variants=50)
        print(f"{'documents':<27} {'json.loads/s':>12} {'fhir.resources/s':>16} {'kroniker/s':>10} "
              f"{'--jobs 2/s':>10} {'kroniker ÷ fhir.resources (time)':>32}")
        with ProcessPoolExecutor(2, initializer=_init_worker, initargs=(str(cache.root),)) as pool:
            for label, batch in docs.items():
                for d in batch[:5]:
                    assert validator.validate(d).standard is not None
                gc.collect()
                loads = _per_second(lambda b=batch: len([json.loads(d) for d in b]), args.seconds)
                model = _per_second(lambda b=batch: len([Bundle.model_validate_json(d) for d in b]), args.seconds)
                full = _per_second(lambda b=batch: len([validator.validate(d) for d in b]), args.seconds)
                halves = [batch[: len(batch) // 2], batch[len(batch) // 2:]]
                two = _per_second(lambda h=halves: sum(pool.map(_validate_chunk, h)), args.seconds)
                print(f"{label:<27} {loads:>12,.0f} {model:>16,.0f} {full:>10,.0f} {two:>10,.0f} "
                      f"{model / full:>32.2f}")
        py, compiled, fallback, which = _invariant_counts(validator)
        print(f"\ninvariants in the Notes and ConditionList package sets: {py + compiled + fallback} "
              f"(Python {py}, compiled from FHIRPath {compiled}, fhirpathpy fallback {fallback}"
              f"{': ' + ', '.join(which) if which else ''})")

        one = tmpdir / "one.json"
        one.write_bytes(docs["notes (MedCom IG)"][0])
        wall, rss_kb = _cli_one_file(cache.root, tmpdir / "home", one)
        print(f"kroniker validate one.json (fresh process, plan cache present): {wall:.2f} s wall, "
              f"peak RSS {rss_kb / 1024:.0f} MB")

        if args.batch:
            folder = tmpdir / "batch"
            folder.mkdir()
            pool_docs = docs["notes (MedCom IG)"] + docs["conditionlist (MedCom IG)"]
            for i in range(args.batch):
                (folder / f"doc-{i:05d}.json").write_bytes(pool_docs[i % len(pool_docs)])
            env = {**os.environ, "KRONIKER_FHIR_PACKAGES": str(cache.root)}
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "kroniker", "validate", "--jobs", "2", "--format", "junit",
                                   str(folder)], env=env, capture_output=True, check=False)
            took = time.perf_counter() - start
            print(f"kroniker validate --jobs 2 over {args.batch:,} MedCom-sized documents: {took:.1f} s "
                  f"({args.batch / took:,.0f} documents/s, exit status {proc.returncode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
