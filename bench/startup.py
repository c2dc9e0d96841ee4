"""Benchmark: what a fresh `kroniker validate` of one Shared Note costs, against a bare `python -c pass`.

    python bench/startup.py [--runs 30] [--shared ../shared] [--note PATH] [--importtime]

Both commands run in fresh processes, interleaved (pass, validate, pass, validate, …) so that a noisy machine
slows both alike; prints the medians, the ratio and the target (at most 8×). The package cache is made from
../shared/fhir-packages in a temporary folder, with its own KRONIKER_HOME; one validation first writes the
compiled plan, as any user's first run does, so the figures are for a run with the plan on disk.

Bytecode is written and used (PYTHONDONTWRITEBYTECODE is dropped for the children), as after a normal install;
without it every run compiles kroniker's modules from source, which is not what a user waits for.
With --importtime, the slowest imports of one `kroniker validate` run are listed after the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 8.0


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return elapsed


def _note(args: argparse.Namespace) -> Path:
    if args.note:
        return Path(args.note)
    medcom = sorted((args.shared / "medcom-examples" / "notes").glob("*.json")) if args.shared else []
    return medcom[0] if medcom else ROOT / "examples" / "shared-note-lbp-annual-control.json"


def _import_report(python: str, note: Path, env: dict[str, str], top: int = 15) -> None:
    done = subprocess.run([python, "-X", "importtime", "-m", "kroniker", "validate", str(note)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    print(f"\nslowest imports (cumulative µs) of one `kroniker validate`, of {len(rows)} modules:")
    for us, name in sorted(rows, reverse=True)[:top]:
        print(f"  {us:8d}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--note", help="the document to validate (default: a MedCom Shared Note example)")
    ap.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    args = ap.parse_args()
    python = sys.executable
    kroniker = str(Path(python).with_name("kroniker"))
    note = _note(args)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRONIKER_") and k != "FHIR_PACKAGE_CACHE"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env |= {"KRONIKER_HOME": str(Path(tmp) / "home"), "KRONIKER_FHIR_PACKAGES": str(Path(tmp) / "packages")}
        subprocess.run([kroniker, "packages", "install", str(args.shared / "fhir-packages")], env=env,
                       stdout=subprocess.DEVNULL, check=True)
        bare = [python, "-c", "pass"]
        validate = [kroniker, "validate", str(note)]
        for _ in range(3):  # the plan on disk, bytecode written, the file system's caches warm
            _time(validate, env)
            _time(bare, env)
        bare_t, validate_t = [], []
        for _ in range(args.runs):
            bare_t.append(_time(bare, env))
            validate_t.append(_time(validate, env))
        b, v = statistics.median(bare_t), statistics.median(validate_t)
        print(f"document: {note}")
        print(f"python -c pass:              median {b * 1000:7.1f} ms  ({args.runs} runs)")
        print(f"kroniker validate one note:  median {v * 1000:7.1f} ms  ({args.runs} runs, interleaved)")
        print(f"ratio: {v / b:.1f}×  (target: at most {TARGET:.0f}×: {'met' if v / b <= TARGET else 'NOT met'})")
        if args.importtime:
            _import_report(python, note, env)


if __name__ == "__main__":
    main()
