"""`kroniker dpia …`: keep the DPIA register: init, import, export, check, adopt, history, sign-off, diff, retire, list.

Exit status as for `kroniker validate`: 0 no errors, 1 errors found (or a sign-off refused because of the register's
state), 2 usage errors and unreadable input. Messages come from the catalogue, in Danish or English.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
PARTY = re.compile(r"^(?P<name>[^<>]*[^<>\s])\s*(?:<(?P<email>[^<>\s]+@[^<>\s]+)>)?$")  # Name <e-mail>


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers `kroniker dpia` and its actions."""
    d = sub.add_parser("dpia", help="keep the DPIA register (GDPR Arts 28, 30, 35): check, adopt, sign off, export",
                       description="The DPO's register of processing, roles, agreements, risks and measures. "
                                   "Exit status: 0 no errors, 1 errors found, 2 usage error or unreadable input.")
    actions = d.add_subparsers(dest="dpia_command", metavar="ACTION")
    d.set_defaults(func=lambda a: _usage(d))

    init = _action(actions, "init", cmd_init, "create the database and store the shipped template")
    init.add_argument("--template", default="lbp", metavar="NAME|FILE",
                      help="a shipped template (lbp: the low back pain package) or a register file; default lbp")
    _authoring(init)

    imp = _action(actions, "import", cmd_import, "import registers or exports (JSON, validated against the schema)")
    imp.add_argument("files", nargs="+", metavar="FILE", help="a register or an export; - for standard input")
    _authoring(imp)

    exp = _action(actions, "export", cmd_export, "export a register at a revision as JSON (with its hash)")
    _register_arg(exp)
    exp.add_argument("--revision", metavar="REF", help="a revision number (3, r3) or hash prefix; default the newest")
    exp.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")

    chk = _action(actions, "check", cmd_check,
                  "check registers against the minimums of Arts 28, 30, 35, 36 and for consistency")
    chk.add_argument("registers", nargs="*", metavar="REGISTER", help="register ids; default every register in force")
    chk.add_argument("--clinic", action="append", default=[], metavar="SOR", help="a clinic's register by its SOR code")
    chk.add_argument("--file", action="append", default=[], type=Path, metavar="FILE",
                     help="check a register or export file as it is, without storing it")
    chk.add_argument("--today", type=_date, default=None, metavar="YYYY-MM-DD",
                     help="the date reviews and deadlines are checked against; default today")
    chk.add_argument("--format", choices=["text", "json"], default="text")
    chk.add_argument("--summary", action="store_true", help="one line per register, no findings")

    adopt = _action(actions, "adopt", cmd_adopt, "make a clinic's register from a template, holding only its deltas")
    adopt.add_argument("--clinic", required=True, metavar="SOR", help="the clinic's SOR code")
    adopt.add_argument("--template", default="lbp", metavar="ID", help="the template register; default lbp")
    adopt.add_argument("--name", help="the clinic's name")
    adopt.add_argument("--cvr", help="the clinic's CVR number")
    adopt.add_argument("--email", help="the clinic's e-mail address")
    adopt.add_argument("--phone", help="the clinic's telephone number")
    adopt.add_argument("--address", help="the clinic's postal address")
    adopt.add_argument("--party", action="append", default=[], metavar="ID=NAME",
                       help="name a party the template leaves to the clinic, with an e-mail address if you like: "
                            "lps-vendor='Name A/S <dpo@name.example>'")
    adopt.add_argument("--agreements-signed", type=_date, metavar="YYYY-MM-DD",
                       help="the clinic has signed the template's standard agreements on this date")
    adopt.add_argument("--delta", type=Path, metavar="FILE", help="further deltas of the clinic (a JSON merge patch)")
    _authoring(adopt)

    hist = _action(actions, "history", cmd_history, "every revision and sign-off of a register")
    _register_arg(hist)
    hist.add_argument("--format", choices=["text", "json"], default="text")

    sign = _action(actions, "sign-off", cmd_sign_off, "sign the newest revision: the DPO's opinion or the controller's "
                                                      "decision, bound to the revision's hash")
    _register_arg(sign)
    sign.add_argument("--role", required=True, choices=["dpo", "controller"])
    sign.add_argument("--name", required=True, help="who signs")
    sign.add_argument("--decision", required=True, choices=["approve", "approve-with-conditions", "reject"])
    sign.add_argument("--statement", help="the opinion or decision in words, with any conditions")
    sign.add_argument("--revision", metavar="REF", help="the revision you read (number or hash prefix): refuse if the "
                                                       "register has changed since")
    sign.add_argument("--despite-errors", action="store_true", help="approve although check finds errors (recorded)")
    sign.add_argument("--today", type=_date, default=None, metavar="YYYY-MM-DD")

    dif = _action(actions, "diff", cmd_diff, "what changed between two revisions, as JSON pointer paths")
    _register_arg(dif)
    dif.add_argument("revisions", nargs="*", metavar="REF",
                     help="FROM [TO] (number or hash prefix); default from the last sign-off (or the previous "
                          "revision) to the newest")
    dif.add_argument("--format", choices=["text", "json"], default="text")

    ret = _action(actions, "retire", cmd_retire, "retire a register (nothing is deleted)")
    _register_arg(ret)
    ret.add_argument("--reason", required=True)
    ret.add_argument("--author", default=None)

    lst = _action(actions, "list", cmd_list, "the registers in the database")
    lst.add_argument("--all", action="store_true", help="retired registers as well")


def _action(actions: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = actions.add_parser(name, help=help_, description=help_)
    p.add_argument("--database", metavar="URL",
                   help="database URL (postgresql://…); default sqlite in $KRONIKER_HOME (~/.kroniker/kroniker.db)")
    p.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    p.set_defaults(func=func)
    return p


def _register_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("register", nargs="?", metavar="REGISTER", help="the register's id (lbp, clinic-<SOR>)")
    p.add_argument("--clinic", metavar="SOR", help="a clinic's register by its SOR code")


def _authoring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--author", default=None, help="who makes the change; default $KRONIKER_AUTHOR or the login name")
    p.add_argument("--reason", default=None, help="why; recorded with the revision")


def _default_lang() -> str:
    env = os.environ.get("KRONIKER_LANG") or os.environ.get("LANG", "")
    return "da" if env.lower().startswith("da") else "en"


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _author(args: argparse.Namespace) -> str:
    if args.author:
        return str(args.author)
    if os.environ.get("KRONIKER_AUTHOR"):
        return os.environ["KRONIKER_AUTHOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _t(key: str, args: argparse.Namespace, **params: Any) -> str:
    from kroniker.validators import messages

    return messages.text(key, args.lang, **params)


def _fail(args: argparse.Namespace, text: str, status: int = EXIT_USAGE) -> int:
    print(f"kroniker dpia {args.dpia_command}: {text}", file=sys.stderr)
    return status


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Any]:
    from kroniker.dpia.store import Store

    store = Store.open(args.database)
    try:
        yield store
    finally:
        store.close()


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Refusals and unreadable input become a message and an exit status, never a traceback."""
    def run(args: argparse.Namespace) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from kroniker.dpia.model import RegisterError
        from kroniker.dpia.store import StoreError

        try:
            _check_arguments(args)
            return func(args)
        except RegisterError as exc:
            return _fail(args, "\n".join([_t("dpia-unreadable", args, source=exc.source),
                                          *_finding_lines(args, exc.findings), *_nothing_imported(args)]))
        except StoreError as exc:
            status = EXIT_FINDINGS if exc.key in ("dpia-signoff-errors", "dpia-signoff-moved") else EXIT_USAGE
            text = exc.message(args.lang)
            text = f"{_t('dpia-in-file', args, source=exc.source)} {text}" if exc.source else text
            return _fail(args, "\n".join([text, *_nothing_imported(args)]), status)
        except (SQLAlchemyError, ImportError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return _fail(args, "\n".join([_t("dpia-database", args, detail=detail), *_nothing_imported(args)]))
        except OSError as exc:
            return _fail(args, _t("dpia-file", args, detail=f"{exc.filename or ''} {exc.strerror or exc}".strip()))
    return run


def _finding_lines(args: argparse.Namespace, findings: list[Any], shown: int = 20) -> list[str]:
    lines = [f"  {f.code:<22} {f.message(args.lang)}" for f in findings[:shown]]
    if len(findings) > shown:
        lines.append(_t("dpia-more", args, count=len(findings) - shown))
    return lines


def _nothing_imported(args: argparse.Namespace) -> list[str]:
    """An import stores all its files in one transaction: after any refusal, none of them."""
    if args.dpia_command == "import" and len(getattr(args, "files", ())) > 1:
        return [_t("dpia-import-none", args, count=len(args.files))]
    return []


# The longest text each option takes: the database's columns for names (200), an explicit bound for the rest, so a
# value is refused with a message instead of failing in PostgreSQL (varchar) or being stored at any length.
TEXT_LIMITS = {"author": 200, "name": 200, "register": 100, "template": 1000, "reason": 2000, "statement": 20000}
TEXT_LIMIT = 1000
FILE_ARGUMENTS = {("import", "files"), ("init", "template")}  # paths: any bytes the file system allows
POSITIONALS = {"register": "REGISTER", "registers": "REGISTER", "revisions": "REF"}


def _check_arguments(args: argparse.Namespace) -> None:
    """Every text given on the command line can be stored and printed: no lone surrogate (what Python makes of
    bytes that are not UTF-8 in an argument) and not longer than its limit. Paths are the file system's business."""
    for dest, value in vars(args).items():
        if (args.dpia_command, dest) in FILE_ARGUMENTS:
            continue
        name = POSITIONALS.get(dest, f"--{dest.replace('_', '-')}")
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                _check_text(name, text, TEXT_LIMITS.get(dest, TEXT_LIMIT))
    if "author" in vars(args) and not args.author:  # the default comes from the environment or the login name
        _check_text("$KRONIKER_AUTHOR", _author(args), TEXT_LIMITS["author"])


def _check_text(option: str, text: str, limit: int) -> None:
    from kroniker.dpia.reading import text_findings
    from kroniker.dpia.store import StoreError

    problems = text_findings(text)
    if problems:
        raise StoreError("dpia-argument-text", option=option, char=problems[0].params.get("char", "\\u0000"))
    if len(text) > limit:
        raise StoreError("dpia-argument-long", option=option, count=len(text), limit=limit)


def _limits(args: argparse.Namespace) -> Any:
    from kroniker.dpia import reading
    from kroniker.dpia.store import StoreError

    try:
        return reading.Limits.from_env()
    except ValueError as exc:
        raise StoreError("dpia-bad-limit", name=exc.args[0], value=exc.args[1]) from None


def _register_id(args: argparse.Namespace) -> str:
    from kroniker.dpia.store import StoreError

    if args.clinic:
        return f"clinic-{args.clinic}"
    if not args.register:
        raise StoreError("dpia-which-register")
    return str(args.register)


# -- init, import, export ----------------------------------------------------------------------------------

@_guarded
def cmd_init(args: argparse.Namespace) -> int:
    from kroniker.dpia import model, reading
    from kroniker.dpia.store import StoreError

    if args.template in model.TEMPLATES:
        document, source = model.template(args.template), f"{args.template}-template.json"
    else:
        source, limits = _shown(args.template), _limits(args)
        document = reading.parse(reading.read_file(args.template, limits, source), source, limits)
        model.require_valid(document, source)
    with _store(args) as store:
        try:
            current = store.revision(document["id"])
        except StoreError:
            current = None
        if current is None:
            rev = store.save(document, author=_author(args), reason=args.reason or _t("dpia-reason-init", args,
                                                                                        source=source))
            assert rev is not None
            print(_t("dpia-init-done", args, register=document["id"], number=rev.number, hash=rev.hash))
        elif current.hash == model.register_hash(document):
            print(_t("dpia-init-present", args, register=document["id"], number=current.number, hash=current.hash))
        else:
            print(_t("dpia-init-differs", args, register=document["id"], number=current.number, hash=current.hash,
                     source=source))
    return EXIT_OK


@_guarded
def cmd_import(args: argparse.Namespace) -> int:
    from kroniker.dpia import exchange, reading

    limits = _limits(args)
    # Every file is read and validated before anything is written; then all are written in one transaction.
    incoming = []
    for name in args.files:
        source = "<stdin>" if name == "-" else _shown(name)
        incoming.append(exchange.read(reading.read_file(name, limits, source), source, limits))
    with _store(args) as store:
        done = exchange.take_in_all(store, incoming, author=_author(args), reason=lambda item: args.reason or _t(
            "dpia-reason-import", args, source=item.source))
    for item in done:  # said only once the transaction is committed
        key = "dpia-import-new" if item.new else "dpia-import-followed" if item.revised_here else "dpia-import-same"
        print(_t(key, args, register=item.register_id, number=item.current.number, hash=item.current.hash,
                 signoffs=item.sign_offs))
        if item.passed_over:
            print("  " + _t("dpia-import-passed-over", args, count=item.passed_over))
    return EXIT_OK


def _shown(name: str | Path) -> str:
    """A file name as messages and reasons show it: a name that is not UTF-8 with its bytes escaped."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@_guarded
def cmd_export(args: argparse.Namespace) -> int:
    from kroniker.dpia import exchange

    with _store(args) as store:
        text = exchange.export_text(store, _register_id(args), args.revision)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        from kroniker.validators.render import write_utf8

        write_utf8(text)
    return EXIT_OK




# -- check ---------------------------------------------------------------------------------------------------

@_guarded
def cmd_check(args: argparse.Namespace) -> int:
    from kroniker.dpia import checks, exchange, reading

    today = args.today or date.today()
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for path in args.file:
        limits = _limits(args)
        incoming = exchange.read(reading.read_file(path, limits, _shown(path)), _shown(path), limits)
        doc = incoming.register
        results.append(_result(args, doc["id"], doc["kind"], None, None, checks.check(doc, today), _shown(path)))
    ids = [*args.registers, *(f"clinic-{sor}" for sor in args.clinic)]
    if ids or not args.file:
        with _store(args) as store:
            for eff, findings in store.check_many(ids or None, today):
                results.append(_result(args, eff.info.id, eff.info.kind, eff.revision.number, eff.hash, findings))
    seconds = time.perf_counter() - started
    if args.format == "json":
        json.dump({"today": today.isoformat(), "registers": results}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        _print_check(args, results, seconds)
    return EXIT_FINDINGS if any(r["errors"] for r in results) else EXIT_OK


def _result(args: argparse.Namespace, register_id: str, kind: str, number: int | None, hash_: str | None,
            findings: list[Any], source: str | None = None) -> dict[str, Any]:
    from kroniker.dpia.checks import CODES
    from kroniker.validators import Severity

    out: dict[str, Any] = {"id": register_id, "kind": kind}
    if source:
        out["source"] = source
    if number is not None:
        out["revision"], out["hash"] = number, hash_
    out["errors"] = sum(f.severity >= Severity.ERROR for f in findings)
    out["warnings"] = sum(f.severity == Severity.WARNING for f in findings)
    out["findings"] = [{"severity": f.severity.label, "code": f.code, "location": f.location,
                        "article": CODES[f.code].article, "message": f.message(args.lang)} for f in findings]
    return out


def _print_check(args: argparse.Namespace, results: list[dict[str, Any]], seconds: float) -> None:
    for r in results:
        where = f"r{r['revision']} {r['hash'][:19]}…" if "revision" in r else r.get("source", "")
        print(_t("dpia-check-head", args, register=r["id"], kind=_t(f"dpia-kind-{r['kind']}", args), where=where,
                 errors=r["errors"], warnings=r["warnings"]))
        if args.summary:
            continue
        for f in r["findings"]:
            label = _t(f"sev-{f['severity']}", args)
            print(f"  {label:<10} {f['code']:<34} {f['message']}")
    if len(results) != 1 or args.summary:  # none at all is worth saying too
        with_errors = sum(1 for r in results if r["errors"])
        print(_t("dpia-check-summary", args, count=len(results), ok=len(results) - with_errors,
                 errors=with_errors, seconds=f"{seconds:.2f}"))


# -- adopt ---------------------------------------------------------------------------------------------------

@_guarded
def cmd_adopt(args: argparse.Namespace) -> int:
    from kroniker.dpia import reading

    with _store(args) as store:
        template = store.revision(args.template).content if store.info(args.template).kind == "template" else {}
        changes = _adoption_changes(args, template)
        if args.delta:
            limits, source = _limits(args), _shown(args.delta)
            extra = reading.parse(reading.read_file(args.delta, limits, source), source, limits)
            if not isinstance(extra, dict):
                return _fail(args, _t("dpia-delta-object", args, source=source))
            changes = _compose(changes, extra)
        rev = store.adopt(args.template, args.clinic, changes, author=_author(args),
                          reason=args.reason or _t("dpia-reason-adopt", args, template=args.template))
    print(_t("dpia-adopted", args, register=rev.register_id, template=args.template,
             template_number=rev.template_number, number=rev.number, hash=rev.hash, deltas=_count_leaves(rev.content)))
    return EXIT_OK


def _compose(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """One delta that does what `first` and then `then` do: unlike applying `then` to `first`, a null in `then`
    stays a null (a removal the store then judges) instead of vanishing from the result unseen."""
    out = dict(first)
    for key, value in then.items():
        out[key] = _compose(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _adoption_changes(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    """The clinic's deltas from the options: its own identity in place of the template's clinic placeholder, the
    parties it names, the date it signed the standard agreements."""
    from kroniker.dpia.store import StoreError

    orgs: dict[str, Any] = {}
    clinic = next((o for o in template.get("organisations", []) if o.get("kind") == "clinic" and o.get("placeholder")),
                  None)
    if clinic is not None:
        me: dict[str, Any] = {"placeholder": None, "identifiers": {"sor": args.clinic}}
        if args.name:
            me["name"] = args.name
        if args.cvr:
            me["identifiers"]["cvr"] = args.cvr
        contact = {k: v for k, v in (("email", args.email), ("phone", args.phone), ("address", args.address)) if v}
        if contact:
            me["contact"] = contact
        orgs[clinic["id"]] = me
    placeholders = {o["id"] for o in template.get("organisations", []) if o.get("placeholder")}
    for spec in args.party:
        party, _, value = spec.partition("=")
        match = PARTY.match(value)
        if party not in placeholders or not match:
            raise StoreError("dpia-bad-party", party=spec, parties=", ".join(sorted(placeholders)) or "—")
        orgs[party] = {"name": match["name"].strip(), "placeholder": None}
        if match["email"]:
            orgs[party]["contact"] = {"email": match["email"]}
    changes: dict[str, Any] = {}
    if orgs:
        changes["organisations"] = orgs
    if args.name and template.get("title"):
        changes["title"] = f"{template['title']} – {args.name}"
    if args.agreements_signed:
        signed = {a["id"]: {"status": "signed", "signed": args.agreements_signed.isoformat()}
                  for a in template.get("agreements", []) if a.get("status") == "standard-terms"}
        if signed:
            changes["agreements"] = signed
    return changes


def _count_leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_leaves(v) for k, v in value.items() if k not in ("id", "kind"))
    return 1


# -- history, sign-off, diff, retire, list -------------------------------------------------------------------

@_guarded
def cmd_history(args: argparse.Namespace) -> int:
    from kroniker.dpia.store import format_time

    register_id = _register_id(args)
    with _store(args) as store:
        info = store.info(register_id)
        revs = store.revisions(register_id)
        signed = store.sign_offs(register_id)
    if args.format == "json":
        json.dump({"id": info.id, "kind": info.kind, "template": info.template_id,
                   "retired": format_time(info.retired) if info.retired else None,
                   "revisions": [{"number": r.number, "hash": r.hash, "author": r.author, "time": format_time(r.time),
                                  "reason": r.reason, "template_revision": r.template_number} for r in revs],
                   "sign_offs": [{"role": s.role, "name": s.name, "decision": s.decision, "time": s.time,
                                  "revision": s.revision_number, "hash": s.revision, "statement": s.statement,
                                  "despite_errors": s.despite_errors} for s in signed]},
                  sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(_t("dpia-history-head", args, register=info.id, kind=_t(f"dpia-kind-{info.kind}", args),
             template=info.template_id or "—"))
    by_revision: dict[int, list[Any]] = {}
    for s in signed:
        by_revision.setdefault(s.revision_number, []).append(s)
    for r in revs:
        on = f"  [{info.template_id} r{r.template_number}]" if r.template_number else ""
        print(f"r{r.number:<4} {format_time(r.time)}  {r.hash[:19]}…  {r.author}{on}  {r.reason}")
        for s in by_revision.get(r.number, []):
            print("       " + _t("dpia-history-signed", args, role=_t(f"dpia-signer-{s.role}", args), name=s.name,
                                 decision=_t(f"dpia-decision-{s.decision}", args), time=s.time)
                  + (f": {s.statement}" if s.statement else ""))
    if info.retired:
        print(_t("dpia-history-retired", args, time=format_time(info.retired), by=info.retired_by or "?",
                 reason=info.retired_reason or ""))
    return EXIT_OK


@_guarded
def cmd_sign_off(args: argparse.Namespace) -> int:
    register_id = _register_id(args)
    with _store(args) as store:
        s = store.sign_off(register_id, role=args.role, name=args.name, decision=args.decision,
                           statement=args.statement, expected=args.revision, despite_errors=args.despite_errors,
                           today=args.today)
    print(_t("dpia-signed", args, register=register_id, role=_t(f"dpia-signer-{s.role}", args), name=s.name,
             decision=_t(f"dpia-decision-{s.decision}", args), number=s.revision_number, hash=s.revision))
    return EXIT_OK


@_guarded
def cmd_diff(args: argparse.Namespace) -> int:
    from kroniker.dpia.diff import diff, render

    register_id = _register_id(args)
    if args.clinic and args.register:  # `diff --clinic SOR 1 2`: the first positional is a revision, not a register
        args.revisions = [args.register, *args.revisions]
    if len(args.revisions) > 2:
        return _fail(args, _t("dpia-diff-usage", args))
    with _store(args) as store:
        new = store.effective(register_id, args.revisions[1] if len(args.revisions) == 2 else None)
        if args.revisions:
            old = store.effective(register_id, args.revisions[0])
        else:
            old = store.effective(register_id, _default_from(store, register_id, new))
        changes = diff(old.document, new.document)
    if args.format == "json":
        json.dump({"register": register_id, "from": {"number": old.revision.number, "hash": old.hash},
                   "to": {"number": new.revision.number, "hash": new.hash},
                   "changes": [c.as_dict() for c in changes]}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(_t("dpia-diff-head", args, register=register_id, old=old.revision.number, new=new.revision.number,
                 old_hash=old.hash[:19], new_hash=new.hash[:19], count=len(changes)))
        print(render(changes, args.lang))
    return EXIT_OK


def _default_from(store: Any, register_id: str, new: Any) -> int:
    """The revision the last decision covers (what changed since it was signed), else the previous revision."""
    deciding = "dpo" if new.info.kind == "template" else "controller"
    decisions = [s for s in store.sign_offs(register_id) if s.role == deciding]
    if decisions:
        return int(decisions[-1].revision_number)
    return max(new.revision.number - 1, min(r.number for r in store.revisions(register_id)))


@_guarded
def cmd_retire(args: argparse.Namespace) -> int:
    register_id = _register_id(args)
    with _store(args) as store:
        store.retire(register_id, by=_author(args), reason=args.reason)
    print(_t("dpia-retired-done", args, register=register_id))
    return EXIT_OK


@_guarded
def cmd_list(args: argparse.Namespace) -> int:
    from kroniker.dpia.store import format_time

    with _store(args) as store:
        infos = store.registers(include_retired=args.all)
    for info in infos:
        extra = f"  ← {info.template_id}" if info.template_id else ""
        retired = "  " + _t("dpia-list-retired", args, time=format_time(info.retired)) if info.retired else ""
        print(f"{info.id:<28} {_t(f'dpia-kind-{info.kind}', args):<12} r{info.head}{extra}{retired}")
    return EXIT_OK
