"""`kroniker conformance run | rerun | report | requirements`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _default_lang() -> str:
    env = os.environ.get("KRONIKER_LANG") or os.environ.get("LANG", "")
    return "da" if env.lower().startswith("da") else "en"


def add_parser(sub: Any) -> None:
    c = sub.add_parser("conformance", help="conformance runs: the features as a test suite against a sharing system "
                       "or a vendor's documents, session records, reports")
    acts = c.add_subparsers(dest="conformance_command", metavar="ACTION")

    r = acts.add_parser("run", help="run the suite (default: against a reference server started here)",
                        description="Exit status: 0 every test case passed, 1 failures, 2 usage error.")
    r.add_argument("--documents", type=Path, metavar="DIR", help="a folder of the vendor's documents (*.json, *.xml)")
    r.add_argument("--target", metavar="URL", help="a sharing system speaking the reference server's endpoints: "
                   "its base URL, without /fhir (e.g. http://127.0.0.1:8080)")
    r.add_argument("--tokens", type=Path, metavar="FILE", help="JSON file: caller → bearer token (with --target)")
    r.add_argument("--token-command", metavar="CMD",
                   help="command printing a bearer token for the caller given as JSON on stdin (with --target)")
    r.add_argument("--seed", type=int, help="numbers the run's test persons (default: random; kept in the record)")
    _outputs(r)
    r.set_defaults(func=cmd_run)

    rr = acts.add_parser("rerun", help="replay a session record (offline) or repeat it live; compare the results",
                         description="Exit status: 0 the same results as the record, 1 different (or the record is not "
                                     "signed with this KRONIKER_HOME's key, or changed since), 2 usage error.")
    rr.add_argument("record", type=Path, metavar="RECORD", help="the session record (JSON) of a run")
    rr.add_argument("--unsigned", action="store_true", help=UNSIGNED_HELP)
    rr.add_argument("--live", action="store_true",
                    help="repeat the requests against the target (a local server, the URL, the documents) instead "
                         "of replaying the recorded answers")
    rr.add_argument("--tokens", type=Path, metavar="FILE", help="JSON file: caller → bearer token (--live, a URL)")
    rr.add_argument("--token-command", metavar="CMD",
                    help="command printing a bearer token for the caller given as JSON on stdin (--live, a URL)")
    rr.add_argument("--documents", type=Path, metavar="DIR", help="where the record's documents are now")
    _outputs(rr)
    rr.set_defaults(func=cmd_rerun)

    rp = acts.add_parser("report", help="write the HTML report, JUnit XML or the evidence zip of a session record",
                         description="Exit status: 0 written, 1 the record is not signed with this KRONIKER_HOME's "
                                     "key or changed since, 2 usage error (no such record, no report chosen).")
    rp.add_argument("record", type=Path, metavar="RECORD", help="the session record (JSON) of a run")
    rp.add_argument("--unsigned", action="store_true", help=UNSIGNED_HELP)
    _reports_args(rp)
    rp.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help=LANG_HELP)
    rp.set_defaults(func=cmd_report)

    rq = acts.add_parser("requirements", help="the traceability table: requirement → scenarios; and what no "
                         "scenario covers", description="Exit status: 0 every requirement is covered or has a "
                         "reason why not, 1 otherwise.")
    rq.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help=LANG_HELP)
    rq.add_argument("--format", choices=["text", "json"], default="text", help="text for people, json for programs")
    rq.set_defaults(func=cmd_requirements)
    c.set_defaults(func=lambda a: (c.print_help(sys.stderr), EXIT_USAGE)[1])


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", type=Path, metavar="RECORD",
                   help="the session record (default: conformance-<time>.json here)")
    _reports_args(p)
    p.add_argument("--cache", type=Path, help="FHIR package cache (default $KRONIKER_FHIR_PACKAGES, "
                   "$FHIR_PACKAGE_CACHE or ~/.fhir/packages)")
    p.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help=LANG_HELP)


UNSIGNED_HELP = "accept a record without a signature (one written before records were signed)"
LANG_HELP = "language of the output and reports (default: da when KRONIKER_LANG or LANG begins with da, else en)"


def _reports_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report for a reviewer")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML for CI")
    p.add_argument("--zip", type=Path, metavar="FILE", help="write the evidence bundle (zip)")


def _err(args: argparse.Namespace, key: str, **params: Any) -> int:
    from kroniker.conformance.steps import message

    print(f"kroniker conformance: {message(key, args.lang, **params)}", file=sys.stderr)
    return EXIT_USAGE


class _Bar:
    """A progress bar on stderr when a person watches (stderr is a terminal)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.bar: Any = None

    def __call__(self, total: int) -> Callable[[], None]:
        from tqdm import tqdm

        from kroniker.conformance.reports import text

        if not sys.stderr.isatty():
            return lambda: None
        self.bar = tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True, desc=text("progress", self.lang))
        update: Callable[[], None] = self.bar.update
        return update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tokens(args: argparse.Namespace) -> Any:
    from kroniker.conformance.targets import CommandTokens, FileTokens

    if args.tokens and args.token_command:
        raise _Usage("tokens-one")
    if args.tokens:
        return FileTokens(args.tokens)
    if args.token_command:
        return CommandTokens(args.token_command)
    return None


class _Usage(Exception):
    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def cmd_run(args: argparse.Namespace) -> int:
    from kroniker.conformance import session
    from kroniker.conformance.targets import LocalServer, RemoteTarget, TargetError, vendor_documents

    bar = _Bar(args.lang)
    try:
        if args.documents and args.target:
            raise _Usage("choose-one")
        key = _key(create=True)
        if (args.tokens or args.token_command) and not args.target:
            raise _Usage("tokens-need-target")
        tokens = _tokens(args)
        if args.documents:
            docs = vendor_documents(args.documents)
            record = session.execute(session.DOCUMENTS, documents=docs, folder=args.documents, cache=args.cache,
                                     seed=args.seed, progress=bar)
        elif args.target:
            if tokens is None:
                raise _Usage("target-needs-tokens")
            target = RemoteTarget(args.target, tokens)
            target.check()
            record = session.execute(session.SERVER, target=target, seed=args.seed, progress=bar)
        else:
            with LocalServer(package_cache=args.cache) as local:
                record = session.execute(session.SERVER, target=local, cache=args.cache, seed=args.seed,
                                         progress=bar)
    except _Usage as exc:
        return _err(args, exc.key, **exc.params)
    except TargetError as exc:
        return _err(args, exc.key, **exc.params)
    finally:
        bar.close()
    _finish(args, record, key)
    return EXIT_OK if record["summary"]["passed"] else EXIT_FAILED


def new_record_path(folder: Path, now: datetime) -> Path:
    """conformance-<time>.json in `folder`, never a record already there (two runs may end in the same second)."""
    stem = f"conformance-{now.strftime('%Y%m%d-%H%M%S')}"
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


def _finish(args: argparse.Namespace, record: dict[str, Any], key: bytes) -> None:
    from kroniker.conformance import session
    from kroniker.conformance.reports import summary_line, text

    out = args.output or new_record_path(Path.cwd(), datetime.now())
    record = session.sign(record, key)
    session.write(record, out)
    print(summary_line(record, args.lang))
    _print_failures(record, args.lang)
    print(text("record-written", args.lang, path=out))
    _reports(args, record)


def _key(create: bool = False) -> bytes:
    """The key in KRONIKER_HOME that signs (and checks) session records."""
    from kroniker.conformance import session
    from kroniker.reference_server import audit

    path = session.key_path()
    try:
        return audit.load_or_create_key(path) if create else audit.load_key(path)
    except audit.Unreadable as exc:
        raise _Usage("key-unreadable", path=path) from exc
    except OSError as exc:
        raise _Usage("key-unreadable", path=path) from exc


def _load_verified(args: argparse.Namespace) -> dict[str, Any]:
    """The record, checked against its signature unless --unsigned says a record from before signing is fine."""
    from kroniker.conformance import session

    record = session.load(args.record)
    if args.unsigned and "signature" not in record:
        return record
    if isinstance(record.get("signature"), dict) and not session.key_path().exists():
        raise session.SignatureError("record-no-key", path=args.record, theirs=record["signature"].get("key_id"))
    session.verify(record, _key(), args.record)
    return record


def _print_failures(record: dict[str, Any], lang: str) -> None:
    """Each requirement that did not pass, with its cases and why; then the cases that test no requirement (a
    document of no known kind) with the step that failed."""
    from kroniker.conformance.reports import text, why
    from kroniker.conformance.steps import step_message

    cases = {c["id"]: c for c in record["cases"]}
    for r in record["requirements"]:
        if r["status"] in ("failed", "error", "inconclusive"):
            print(f"  {r['id']} ({r['grade']}): {text(r['status'], lang)}")
            for ref in r["cases"]:
                if ref["status"] != "passed":
                    because = why(cases.get(ref["id"]), r["id"], ref, lang)
                    print(f"    {ref['id']}: {text(ref['status'], lang)}{' — ' + because if because else ''}")
    for c in record["cases"]:
        if c["status"] != "passed" and not c["requirements"]:
            failing = next((s for s in c["steps"] if s["status"] in ("failed", "error", "undefined")), None)
            because = step_message(failing, lang) if failing else ""
            print(f"  {c['id']}: {text(c['status'], lang)}{' — ' + because if because else ''}")


def _reports(args: argparse.Namespace, record: dict[str, Any]) -> None:
    from kroniker.conformance import reports

    if args.html:
        args.html.write_text(reports.html(record, args.lang), encoding="utf-8")
        print(reports.text("report-written", args.lang, kind="HTML", path=args.html))
    if args.junit:
        args.junit.write_text(reports.junit(record, args.lang), encoding="utf-8")
        print(reports.text("report-written", args.lang, kind="JUnit", path=args.junit))
    if args.zip:
        args.zip.write_bytes(reports.evidence_zip(record, args.lang))
        print(reports.text("report-written", args.lang, kind="zip", path=args.zip))


def cmd_rerun(args: argparse.Namespace) -> int:
    from kroniker.conformance import session
    from kroniker.conformance.document_steps import VendorDocument
    from kroniker.conformance.reports import text
    from kroniker.conformance.targets import LocalServer, RemoteTarget, TargetError, vendor_documents

    bar = _Bar(args.lang)
    try:
        key = _key(create=True)
        old = _load_verified(args)
        changed = session.changed_inputs(old)
        if changed:
            print(text("changed-inputs", args.lang, inputs=", ".join(changed)), file=sys.stderr)
        suite, seed = old["suite"], old["seed"]
        if suite == session.DOCUMENTS:
            folder = args.documents or Path(old["target"].get("folder") or ".")
            if args.live:
                docs = vendor_documents(folder)
                mismatch = _documents_changed(old, docs)
                if mismatch:
                    raise TargetError("documents-differ", path=folder, names=", ".join(mismatch))
            else:
                docs = [VendorDocument(folder / d["name"], d["name"], d["sha256"], d["kind"])
                        for d in old["inputs"]["documents"]]
            new = session.execute(suite, documents=docs, folder=folder, cache=args.cache, seed=seed,
                                  replay=None if args.live else old, progress=bar)
        elif not args.live:
            new = session.execute(suite, seed=seed, replay=old, progress=bar)
        elif old["target"].get("kind") == "local":
            with LocalServer(package_cache=args.cache) as local:
                new = session.execute(suite, target=local, cache=args.cache, seed=seed, progress=bar)
        else:
            tokens = _tokens(args)
            if tokens is None:
                raise _Usage("target-needs-tokens")
            target = RemoteTarget(old["target"]["url"], tokens)
            target.check()
            new = session.execute(suite, target=target, seed=seed, progress=bar)
    except _Usage as exc:
        return _err(args, exc.key, **exc.params)
    except session.SignatureError as exc:
        _err(args, exc.key, **exc.params)
        return EXIT_FAILED
    except (session.RecordError, TargetError) as exc:
        return _err(args, exc.key, **exc.params)
    finally:
        bar.close()
    _finish(args, new, key)
    diff = session.differences(old, new)
    if diff:
        print(text("different", args.lang))
        for line in diff:
            print(f"  {line}")
        return EXIT_FAILED
    print(text("identical-one" if len(new["cases"]) == 1 else "identical", args.lang, cases=len(new["cases"])))
    return EXIT_OK


def _documents_changed(record: dict[str, Any], docs: list[Any]) -> list[str]:
    was = {d["name"]: d["sha256"] for d in record["inputs"]["documents"]}
    now = {d.name: d.sha256 for d in docs}
    return sorted(n for n in set(was) | set(now) if was.get(n) != now.get(n))


def cmd_report(args: argparse.Namespace) -> int:
    from kroniker.conformance import session

    if not (args.html or args.junit or args.zip):
        return _err(args, "no-report")
    try:
        record = _load_verified(args)
    except _Usage as exc:
        return _err(args, exc.key, **exc.params)
    except session.SignatureError as exc:
        _err(args, exc.key, **exc.params)
        return EXIT_FAILED
    except session.RecordError as exc:
        return _err(args, exc.key, **exc.params)
    _reports(args, record)
    return EXIT_OK


def cmd_requirements(args: argparse.Namespace) -> int:
    from kroniker.conformance import features
    from kroniker.conformance import requirements as reqs
    from kroniker.conformance.reports import text

    lang = args.lang
    catalogue, scenarios = reqs.load(), features.load_all()
    traces = reqs.traceability(catalogue, scenarios)
    unknown = reqs.unknown_tags(catalogue, scenarios)
    if args.format == "json":
        json.dump({"requirements": [{
            "id": t.requirement.id, "grade": t.requirement.grade, "text": t.requirement.text[lang],
            "source": t.requirement.source, "scenarios": [s.id for s in t.scenarios],
            **({"not_covered": t.requirement.not_covered[lang]} if not t.covered and t.requirement.not_covered
               else {})} for t in traces],
            "unknown_tags": [{"scenario": s.id, "tag": tag} for s, tag in unknown]},
            sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        for t in traces:
            r = t.requirement
            print(f"{r.id}  [{r.grade}]  {r.text[lang]}")
            print(f"    {text('source', lang)}: {r.source_text()}")
            for s in t.scenarios:
                print(f"    - {s.id}  {s.name}")
            if not t.covered:
                print(f"    - ({text('no-scenario', lang)})")
        uncovered = [t for t in traces if not t.covered]
        print(f"\n{text('uncovered', lang)}: {len(uncovered)}")
        for t in uncovered:
            why = t.requirement.not_covered[lang] if t.requirement.not_covered else "?"
            print(f"  {t.requirement.id}: {why}")
        if unknown:
            print(f"\n{text('unknown-tags', lang)}:")
            for s, tag in unknown:
                print(f"  {s.id}: @krav:{tag}")
    unexplained = [t for t in traces if not t.covered and not t.requirement.not_covered]
    return EXIT_FAILED if unknown or unexplained else EXIT_OK
