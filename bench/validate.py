"""Benchmark: how fast is full validation, against json.loads alone and fhir.resources' model validation
alone on the same documents, measured in the same run (ratios, since the machine is noisy).

    python bench/validate.py [--seconds 3] [--shared ../shared]

Documents: MedCom's Shared Notes and ConditionList IG examples (read from ../shared/fhir-packages) and a
realistic note of our own (tests/builders.py, with about 4 KB of note text).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _per_second(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second, the median of five rounds of about seconds/5 each."""
    fn()  # warm
    rounds = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / 5
        while True:
            fn()
            n += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        rounds.append(n / (now - start))
    return statistics.median(rounds)


def _documents(shared: Path) -> dict[str, list[bytes]]:
    from tests.builders import shared_note

    docs: dict[str, list[bytes]] = {"notes (MedCom IG)": [], "conditionlist (MedCom IG)": []}
    for tgz, key in (("medcom.fhir.dk.notes-1.0.0.tgz", "notes (MedCom IG)"),
                     ("medcom.fhir.dk.conditionlist-1.0.1.tgz", "conditionlist (MedCom IG)")):
        with tarfile.open(shared / "fhir-packages" / tgz) as tf:
            for m in tf.getmembers():
                if m.name.startswith("package/example/Bundle-"):
                    docs[key].append(tf.extractfile(m).read())  # type: ignore[union-attr]
    paragraph = ("<p>Patienten har haft lænderygsmerter i tre år. Smerterne er stabile, NRS 4/10 i hvile og 6/10 "
                 "ved længere tids stående arbejde. Går dagligt, cykler til arbejde. <b>Mål:</b> fortsætte.</p>")
    note_html = paragraph * (4096 // len(paragraph) + 1)
    docs["own note (4 KB text)"] = [json.dumps(shared_note(note_html)).encode()]
    return docs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()
    if not (args.shared / "fhir-packages").is_dir():
        print(f"needs MedCom's packages in {args.shared}/fhir-packages", file=sys.stderr)
        return 2

    from fhir.resources.R4B.bundle import Bundle

    from kroniker.validators.packages import Installer, PackageCache
    from kroniker.validators.validate import Validator

    with tempfile.TemporaryDirectory() as tmp:
        cache = PackageCache(Path(tmp))
        Installer(cache, registries=[]).install([str(args.shared / "fhir-packages")])
        validator = Validator(cache)
        print(f"{'documents':<28} {'json.loads/s':>13} {'fhir.resources/s':>17} {'kroniker/s':>11} "
              f"{'kroniker ÷ fhir.resources (time)':>34}")
        for label, docs in _documents(args.shared).items():
            for d in docs:  # compile the plans once (warm)
                assert validator.validate(d) is not None
            gc.collect()
            loads = _per_second(lambda docs=docs: [json.loads(d) for d in docs], args.seconds) * len(docs)
            model = _per_second(lambda docs=docs: [Bundle.model_validate_json(d) for d in docs],
                                args.seconds) * len(docs)
            full = _per_second(lambda docs=docs: [validator.validate(d) for d in docs], args.seconds) * len(docs)
            print(f"{label:<28} {loads:>13,.0f} {model:>17,.0f} {full:>11,.0f} {model / full:>34.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
