"""Benchmark: the DPIA register with every clinic in Denmark on it — 1,700 adopted clinics stored and all checked.

    python bench/dpia.py [--clinics 1700] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Prints, for SQLite (a fresh file) and for PostgreSQL when it answers (a fresh schema, dropped afterwards):
- storing the template and adopting N clinics, each in its own transaction as `kroniker dpia adopt` does;
- checking every register in force (`kroniker dpia check`), in process: the target is under 10 s;
- a template change reaching every clinic (one new revision per clinic, in one transaction);
- checking them all again after the change (every clinic's sign-off is now stale);
- `kroniker dpia check --summary` as a fresh process, wall time.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kroniker.dpia import model  # noqa: E402
from kroniker.dpia.store import Store  # noqa: E402
from tests.dpia_support import clinic_changes  # noqa: E402

TODAY = date(2026, 12, 1)
TARGET_SECONDS = 10.0


def timed(label: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"  {label:<58} {seconds:8.2f} s")
    return seconds, result


def run(url: str, clinics: int) -> dict[str, float]:
    store = Store.open(url)
    figures: dict[str, float] = {}
    try:
        store.save(model.template(), author="DPO", reason="skabelonen")
        store.sign_off("lbp", role="dpo", name="DPO", decision="approve", today=TODAY)

        def adopt_all() -> None:
            for i in range(clinics):
                sor = f"{100000000000 + i}"
                rev = store.adopt("lbp", sor, clinic_changes(f"Klinik {i}", sor), author="klinik", reason="tilslutning")
                store.sign_off(rev.register_id, role="controller", name=f"Læge {i}", decision="approve",
                               despite_errors=True)

        figures["adopt"], _ = timed(f"adopt {clinics} clinics (and sign each off)", adopt_all)
        figures["check"], results = timed(f"check all {clinics + 1} registers",
                                          lambda: list(store.check_many(None, TODAY)))
        with_errors = sum(1 for _, found in results if any(f.severity >= 2 for f in found))
        print(f"  {'':<58} {len(results)} registers, {with_errors} with errors")

        changed = copy.deepcopy(model.template())
        changed["dpia"]["review"]["triggers"].append("Ny version af kronikerpakken")
        figures["propagate"], _ = timed(f"template change reaching {clinics} clinics",
                                        lambda: store.save(changed, author="DPO", reason="ny udløser"))
        figures["check_after"], results = timed("check all again (every sign-off now stale)",
                                                lambda: list(store.check_many(None, TODAY)))
        stale = sum(1 for _, found in results if any(f.code == "DPIA-SIGNOFF-STALE" for f in found))
        print(f"  {'':<58} {stale} registers with a stale sign-off")
    finally:
        store.close()
    env = {**os.environ, "KRONIKER_LANG": "en"}
    figures["process"], proc = timed("`kroniker dpia check --summary` as a fresh process", lambda: subprocess.run(
        [sys.executable, "-m", "kroniker", "dpia", "check", "--summary", "--today", TODAY.isoformat(),
         "--database", url], capture_output=True, text=True, env=env, check=False))
    print(f"  {'':<58} {proc.stdout.strip().splitlines()[-1] if proc.stdout else proc.stderr.strip()}")
    return figures


@contextmanager
def postgres_schema(base: str) -> Iterator[str | None]:
    try:
        import psycopg

        with psycopg.connect(base, connect_timeout=3, autocommit=True) as conn:
            schema = f"kroniker_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # not reachable: say so and go on with SQLite only
        print(f"PostgreSQL at {base}: not reachable ({type(exc).__name__}), skipped")
        yield None
        return
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clinics", type=int, default=1700)
    parser.add_argument("--postgres", default=os.environ.get("KRONIKER_TEST_PG",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    print(f"kroniker DPIA register: {args.clinics} clinics on the low back pain template, "
          f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite ({tmp}/kroniker.db):")
        sqlite = run(f"sqlite:///{tmp}/kroniker.db", args.clinics)
    results = {"SQLite": sqlite}
    with postgres_schema(args.postgres) as url:
        if url:
            print("PostgreSQL:")
            results["PostgreSQL"] = run(url, args.clinics)
    for name, figures in results.items():
        verdict = "under" if figures["check"] < TARGET_SECONDS else "OVER"
        print(f"{name}: checking {args.clinics} clinics took {figures['check']:.2f} s in process, "
              f"{figures['process']:.2f} s as a fresh command ({verdict} the {TARGET_SECONDS:.0f} s target)")


if __name__ == "__main__":
    main()
