"""Running a suite: each scenario's steps bound to the step registry, every exchange and observation recorded,
and the results per scenario and per requirement; or the same, replayed from a session record."""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kroniker.conformance import document_steps, sharing
from kroniker.conformance.document_steps import DocumentWorld, VendorDocument
from kroniker.conformance.features import Scenario
from kroniker.conformance.requirements import Catalogue
from kroniker.conformance.steps import Context, Evidence, Http, Observer, Registry, Target, Unsupported, message

Progress = Callable[[], None]
PASSED, FAILED, ERROR, SKIPPED, UNDEFINED = "passed", "failed", "error", "skipped", "undefined"
INCONCLUSIVE, NOT_RUN, NOT_COVERED = "inconclusive", "not-run", "not-covered"
MAX_MESSAGE = 2000
CPR_NUMBERS = 302_000_000  # run_patient's distinct numbers


@dataclass(frozen=True)
class Case:
    """One test case: a scenario, and for the documents suite the vendor's document it runs with."""

    scenario: Scenario
    document: VendorDocument | None = None

    @property
    def requirements(self) -> tuple[str, ...]:
        """A document of no known standard tests none of the scenario's requirements: its case fails on its own."""
        return () if self.document is not None and self.document.kind is None else self.scenario.requirements

    @property
    def id(self) -> str:
        return f"{self.scenario.id}#{self.document.name}" if self.document else self.scenario.id


def server_cases(scenarios: list[Scenario]) -> list[Case]:
    return [Case(s) for s in scenarios]


def document_cases(scenarios: list[Scenario], documents: list[VendorDocument]) -> list[Case]:
    """Each @dokument scenario with each document of its kind; a document of no known kind gets a case of its own
    (with the first scenario) so that it fails visibly rather than being skipped."""
    out = []
    for d in documents:
        mine = [s for s in scenarios if d.kind and Path(s.uri).stem in document_steps.FEATURES_OF_KIND[d.kind]]
        out += [Case(s, d) for s in (mine or scenarios[:1])]
    return out


def _message(exc: BaseException) -> dict[str, Any]:
    """What failed, for a reviewer: the check's message (a key of conformance/messages and its values, so that a
    report gives it in Danish or English), or the line of the check that did not hold; `message` is the English."""
    key, params = getattr(exc, "key", None), dict(getattr(exc, "params", {}) or {})
    text = str(exc).strip()
    if key is None:
        if isinstance(exc, AssertionError) and not text:
            frames = traceback.extract_tb(exc.__traceback__)
            key, params = "check-line", {"line": frames[-1].line if frames else "?"}
        elif isinstance(exc, AssertionError):
            key, params = "check-other", {"text": text}
        elif isinstance(exc, Unsupported):
            key, params = "err-other", {"text": text}
        else:
            key, params = "err-exception", {"kind": type(exc).__name__, "text": text}
        text = message(key, "en", **params)
    return {"message": text[:MAX_MESSAGE], "key": key, "params": params}


def run_case(case: Case, registry: Registry, world: Any) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    status = PASSED
    for step in case.scenario.steps:
        entry: dict[str, Any] = {"keyword": step.keyword, "text": step.text, "status": SKIPPED}
        steps.append(entry)
        if status != PASSED:
            continue
        found = registry.find(step.kind, step.text)
        if found is None:
            entry["status"], status = UNDEFINED, ERROR
            entry.update(message=message("err-undefined", "en"), key="err-undefined", params={})
            continue
        fn, kwargs = found
        try:
            fn(world, **kwargs)
            entry["status"] = PASSED
        except AssertionError as exc:
            entry["status"], status = FAILED, FAILED
            entry.update(_message(exc))
        except Exception as exc:  # the target misbehaved or could not be reached: this case, not the run, ends
            entry["status"], status = ERROR, ERROR
            entry.update(_message(exc))
    return {"status": status, "steps": steps}


def run(cases: list[Case], catalogue: Catalogue, *, target: Target | None = None, seed: int = 0,
        validate: Callable[[bytes], list[dict[str, Any]]] | None = None,
        package_profile: Callable[[bytes], str | None] | None = None,
        replay: dict[str, dict[str, Any]] | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every case, in order; `replay` (case id → recorded case) answers from a record instead of the target."""
    counter = itertools.count(seed % CPR_NUMBERS)
    out = []
    for case in cases:
        evidence = Evidence()
        recorded = replay.get(case.id) if replay is not None else None
        if replay is not None and recorded is None:
            result: dict[str, Any] = {"status": ERROR, "steps": [], "message": "the record has no such case"}
        else:
            was = (recorded or {}).get("evidence", {})
            http = Http(target, evidence, sharing.INVARIANTS,
                        replay=was.get("exchanges", []) if recorded is not None else None)
            observe = Observer(evidence, was.get("observations", []) if recorded is not None else None)
            ctx = Context(target, http, observe, evidence, lambda: next(counter), case.document)
            world: Any
            if case.document is not None:
                world = DocumentWorld(ctx, catalogue, case.requirements, validate, package_profile)
                registry = document_steps.steps
            else:
                world, registry = sharing.World(ctx), sharing.steps
            try:
                result = run_case(case, registry, world)
            finally:
                http.close()
            if case.document is not None and world.notes:
                result["notes"] = world.notes
        s = case.scenario
        out.append({"id": case.id, "scenario": s.id, "uri": s.uri, "feature": s.feature, "name": s.name,
                    "requirements": list(case.requirements),
                    **({"document": case.document.name} if case.document else {}),
                    **result, "verdicts": evidence.verdicts, "broken": evidence.broken,
                    "evidence": {"exchanges": evidence.exchanges, "observations": evidence.observations}})
        if progress is not None:
            progress()
    return out


def requirement_results(catalogue: Catalogue, scenarios: list[Scenario], cases: list[dict[str, Any]]
                        ) -> list[dict[str, Any]]:
    """Each requirement's result from the cases that tested it.

    A case's requirements take its result, unless a step decided one explicitly (the documents suite) or an
    invariant found a requirement broken: then that requirement fails, and the case's other requirements are
    inconclusive when the case failed (the broken behaviour, not theirs, may be what failed it)."""
    per: dict[str, list[tuple[str, str, str]]] = {r.id: [] for r in catalogue.requirements}
    for c in cases:
        broken = c.get("broken", {})
        for rid, problem in broken.items():
            per.setdefault(rid, []).append((c["id"], FAILED, problem))
        for rid in c["requirements"]:
            if rid in broken:
                continue
            verdict = c.get("verdicts", {}).get(rid)
            if verdict is not None:
                per.setdefault(rid, []).append((c["id"], verdict["status"], "; ".join(verdict.get("findings", []))))
            elif broken and c["status"] != PASSED:
                per.setdefault(rid, []).append((c["id"], INCONCLUSIVE, "broken: " + ", ".join(sorted(broken))))
            else:
                per.setdefault(rid, []).append((c["id"], c["status"], ""))
    covered = {rid for s in scenarios for rid in s.requirements}
    out = []
    for r in catalogue.requirements:
        results = per.get(r.id, [])
        statuses = {st for _, st, _ in results}
        if not results:
            status = NOT_RUN if r.id in covered else NOT_COVERED
        else:
            status = next(st for st in (FAILED, ERROR, INCONCLUSIVE, PASSED) if st in statuses or st == PASSED)
        out.append({"id": r.id, "status": status, "grade": r.grade,
                    "cases": [{"id": cid, "status": st, **({"why": why} if why else {})} for cid, st, why in results]})
    return out
