"""Validating many documents: what the PATHs name (files, folders, glob patterns, "-" for standard input),
validated in one process or several, the reports back in input order."""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kroniker.validators.findings import Report, Severity, finding
from kroniker.validators.packages import PackageCache
from kroniker.validators.profiles import PlanStore
from kroniker.validators.source import Limits
from kroniker.validators.validate import Validator

STDIN = "-"
STDIN_NAME = "<stdin>"
SUFFIXES = (".json", ".xml")
_GLOB_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True, slots=True)
class Input:
    """One document to validate: a file, the bytes read from standard input, or a pattern that matched
    nothing (reported as unreadable rather than dropped, so a typo in CI does not pass as "no errors")."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    no_match: bool = False


class UsageError(Exception):
    """The PATHs cannot be used as given (standard input named twice); the message is a catalogue key."""


def expand(paths: Sequence[str], stdin: BinaryIO | None, limits: Limits) -> list[Input]:
    """The inputs the PATHs name, in the order given; a folder's files and a pattern's matches sorted."""
    if sum(p == STDIN for p in paths) > 1:
        raise UsageError("stdin-twice")
    out: list[Input] = []
    for raw in paths:
        if raw == STDIN:
            out.append(Input(STDIN_NAME, data=_read_stdin(stdin, limits)))
        else:
            out.extend(_expand_one(raw))
    return out


def _expand_one(raw: str) -> Iterator[Input]:
    path = Path(raw)
    # A file whose name happens to hold * or [ is that file, not a pattern.
    if path.exists() or not _GLOB_MAGIC.search(raw):
        yield from _path_inputs(path)
        return
    matches = sorted(glob.glob(raw, recursive=True))
    if not matches:
        yield Input(raw, no_match=True)
    for match in matches:
        yield from _path_inputs(Path(match))


def _path_inputs(path: Path) -> Iterator[Input]:
    """A folder: its documents below it; anything else is validated (a missing file is then reported)."""
    if path.is_dir():
        yield from (Input(str(p), path=p) for p in sorted(_documents_below(path)))
    else:
        yield Input(str(path), path=path)


def _documents_below(folder: Path) -> Iterator[Path]:
    for p in folder.rglob("*"):
        if p.suffix.lower() in SUFFIXES and p.is_file():
            yield p


def _read_stdin(stdin: BinaryIO | None, limits: Limits) -> bytes:
    if stdin is None:
        return b""
    # One byte past the limit is enough to refuse the input as too large without holding all of it.
    return stdin.read(limits.max_bytes + 1) or b""


def check(validator: Validator, item: Input) -> Report:
    """Validate one input; the report is detached (positions and snippets in, the parsed input out)."""
    if item.no_match:
        unread = finding(Severity.FATAL, "unreadable", "(document)", (),
                          {"file": item.name, "reason": "@glob-no-match"}, message_key="unreadable-file")
        return Report([unread], source_name=item.name)
    source = item.data if item.data is not None else item.path
    assert source is not None
    return validator.validate(source, name=item.name).detached()


# -- processes ---------------------------------------------------------------------------------------------

_WORKER: Validator | None = None


def _start_worker(cache_root: Path, limits: Limits, plans: PlanStore | None) -> None:
    # Each process builds its Validator once; its compiled profiles then serve every document it gets.
    global _WORKER
    _WORKER = Validator(PackageCache(cache_root), limits, plans)


def _check_in_worker(item: Input) -> Report:
    assert _WORKER is not None, "the worker was not started"
    report = check(_WORKER, item)
    # A worker has no last moment of its own: it saves after a document that made it compile something new
    # (a handful of times per standard; otherwise this writes nothing).
    _WORKER.save_plans()
    return report


# Given the number of documents, returns what to call as each one is done (a progress bar's update).
Progress = Callable[[int], Callable[[], None]]


def run(inputs: Sequence[Input], cache_root: Path, limits: Limits, plans: PlanStore | None = None, jobs: int = 1,
        progress: Progress | None = None) -> list[Report]:
    """The reports for the inputs, in their order, validated in `jobs` processes; what was compiled on the way
    is given to `plans` (if any) once the batch is done."""
    if jobs <= 1 or len(inputs) <= 1:
        tick = progress(len(inputs)) if progress else _nothing
        validator = Validator(PackageCache(cache_root), limits, plans)
        reports = []
        try:
            for item in inputs:
                reports.append(check(validator, item))
                tick()
        finally:
            validator.save_plans()  # also when interrupted: what was compiled is not lost
        return reports
    from concurrent.futures import ProcessPoolExecutor, as_completed  # only a batch in processes needs them

    results: list[Report | None] = [None] * len(inputs)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(inputs)), initializer=_start_worker,
                               initargs=(cache_root, limits, plans))
    try:
        futures = {pool.submit(_check_in_worker, item): i for i, item in enumerate(inputs)}
        # The progress bar starts only now: its monitor thread must not be running when the workers fork.
        tick = progress(len(inputs)) if progress else _nothing
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            tick()
    finally:
        # On an error, do not wait for the rest of a large batch before saying so.
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]


def _nothing() -> None:
    pass


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def stdin_bytes() -> BinaryIO | None:
    """Standard input as bytes (None when there is none, as under some service managers)."""
    stream = sys.stdin
    return getattr(stream, "buffer", None) if stream is not None else None
