"""Benchmark: a care package's work per patient — the patient's response and the GP's assessment validated and
scored, and the triage suggested — as a ratio to validating one MedCom Shared Note, measured in the same run.

    python bench/clinical.py [--seconds 3] [--shared ../shared]

Prints per-operation times (median of five rounds) and the ratios:
- validate one Shared Note (tests/builders.py, made distinct each time) — the baseline;
- score one patient response (validated against its Questionnaire, scored by its calculatedExpressions);
- triage one patient (both responses validated and scored, the rule set applied, the ClinicalImpression built);
- triage and the GP's decision.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _seconds_per_op(fn: Callable[[int], object], seconds: float) -> float:
    """Seconds per call: the median of five rounds of about seconds/5 each; fn gets a running number."""
    fn(0)  # warm
    rounds, i = [], 1
    for _ in range(5):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / 5
        while True:
            fn(i)
            i, n = i + 1, n + 1
            now = time.perf_counter()
            if now >= deadline:
                break
        rounds.append((now - start) / n)
    return statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()

    from kroniker.cli import main as kroniker
    from kroniker.clinical import Content, decide, score, triage
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.validate import Validator
    from tests.builders import shared_note
    from tests.clinical_support import assessment, patient_response

    with tempfile.TemporaryDirectory() as tmp:
        cache = PackageCache(Path(tmp) / "cache")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            # Installed as a user installs them: MedCom's from ../shared, kroniker's built from profiles/packages.
            assert kroniker(["packages", "install", str(args.shared / "fhir-packages"), "--no-deps",
                             "--cache", str(cache.root)]) == 0
            assert kroniker(["package", "build", "--out", f"{tmp}/dist"]) == 0
            assert kroniker(["packages", "install", f"{tmp}/dist", "--no-deps", "--cache", str(cache.root)]) == 0
        validator, content = Validator(cache), Content(cache)

        def note(i: int) -> object:
            doc = json.dumps(shared_note(f"<p>Årskontrol {i}: smerter stabile, øvelser hver dag.</p>"))
            report = validator.validate(doc.encode("utf-8"))
            assert report.valid, [f.code for f in report.errors()]
            return report

        # Patients differ in their answers (and ids), so nothing can be remembered from one to the next.
        patients = [patient_response(startback=tuple(bool(i >> k & 1) for k in range(8)),
                                     bothersome=("slightly", "very-much")[i % 2], rid=f"p{i}") for i in range(256)]
        gps = [assessment(need=("need-low", "need-moderate", "need-high")[i % 3], rid=f"a{i}") for i in range(256)]

        def scored(i: int) -> object:
            s = score(patients[i % 256], content)
            assert s.scores is not None
            return s

        def triaged(i: int) -> object:
            t = triage(patients[i % 256], gps[i % 256], content)
            assert t.resource is not None
            return t

        def decided(i: int) -> object:
            t = triage(patients[i % 256], gps[i % 256], content)
            assert t.resource is not None
            return decide(t.resource, "green", reason="Aftalt med patienten")

        base = _seconds_per_op(note, args.seconds)
        rows = [("validate one Shared Note (baseline)", base),
                ("score one patient response", _seconds_per_op(scored, args.seconds)),
                ("triage one patient (two responses scored + rules)", _seconds_per_op(triaged, args.seconds)),
                ("triage + the GP's decision", _seconds_per_op(decided, args.seconds))]
    print(f"{'operation':<52} {'ms':>8} {'x note':>8}")
    for name, secs in rows:
        print(f"{name:<52} {secs * 1000:8.2f} {secs / base:8.2f}")


if __name__ == "__main__":
    main()
