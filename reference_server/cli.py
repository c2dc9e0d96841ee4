"""`kroniker serve`, `kroniker token`, `kroniker audit verify|checkpoint`: the reference server's sub-commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kroniker.reference_server.tokens import ROLES

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the DDS-like reference server (SQLite by default, PostgreSQL by URL)",
                       description="Serves until SIGTERM or Ctrl-C; requests in flight then finish and the "
                       "server exits 0. A port already in use is refused before anything starts (exit 2).")
    s.add_argument("--database", help="database URL (default: SQLite in $KRONIKER_HOME, ~/.kroniker)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    s.add_argument("--port", type=_number(0, 65535), default=8080, help="port to listen on (default: %(default)s)")
    s.add_argument("--workers", type=_number(1, 256), default=1,
                   help="worker processes, one per CPU (default: %(default)s)")
    s.add_argument("--cache", type=Path, help="FHIR package cache (default: $KRONIKER_FHIR_PACKAGES or "
                   "~/.fhir/packages)")
    s.add_argument("--lang", choices=["da", "en"], default=_default_lang(),
                   help="language of the messages (default: from $KRONIKER_LANG or $LANG, now %(default)s)")
    s.add_argument("--load", action="append", nargs="+", metavar="PATH", default=[],
                   help="documents (files, folders, glob patterns) shared on start, before serving, each as its "
                   "author's GP system; a refused one is reported and the server starts all the same (default: "
                   "none)")
    s.add_argument("--strict", action="store_true",
                   help="with --load: do not start (exit 1) when a document is refused (default: start)")
    s.add_argument("--no-access-log", dest="access_log", action="store_false",
                   help="no access log line per request on stderr (default: one line per request: time, method, "
                   "path, status, milliseconds, role)")
    s.add_argument("--citizen-sees-suggestion", action="store_true", dest="citizen_sees_suggestion",
                   help="the citizen sees a triage suggestion before the GP has decided "
                        "(default: off; also $KRONIKER_CITIZEN_SEES_SUGGESTION)")
    s.add_argument("--embargo", action="append", type=_embargo, default=[], metavar="CODE=HOURS",
                   help="a citizen (or their proxy) sees a document of type CODE only HOURS after its date; "
                        "repeat for more types (default: none; also $KRONIKER_EMBARGO=\"CODE=HOURS,...\")")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("token", help="print a bearer token for a role, signed with this data directory's key")
    t.add_argument("--role", choices=ROLES, help="the role (required unless --claims-stdin)")
    t.add_argument("--cpr")
    t.add_argument("--sor")
    t.add_argument("--ydernummer")
    t.add_argument("--auth-id", dest="auth_id")
    t.add_argument("--org-name", dest="org_name")
    t.add_argument("--name")
    t.add_argument("--hours", type=float, default=12.0,
                   help="how long the token is valid (default 12; at most KRONIKER_TOKEN_MAX_HOURS, default 24)")
    t.add_argument("--claims-stdin", action="store_true",
                   help="read the claims as one JSON object on standard input ({\"role\", \"cpr\", \"sor\", "
                   "\"ydernummer\", \"auth_id\", \"org_name\", \"name\"}), as `kroniker conformance run "
                   "--token-command` gives them; options given as well win")
    t.set_defaults(func=cmd_token)

    a = sub.add_parser("audit", help="the audit log")
    acts = a.add_subparsers(dest="audit_command", metavar="ACTION")
    v = acts.add_parser("verify", help="check the audit log's keyed hash chain and the stored documents for "
                        "tampering", description="Exit status: 0 intact, 1 tampered with, 2 cannot be checked "
                        "(no database, no key, an unreadable checkpoint).")
    v.add_argument("--database", help="database URL (default: SQLite in $KRONIKER_HOME)")
    v.add_argument("--against", type=Path, metavar="CHECKPOINT",
                   help="a checkpoint file (kroniker audit checkpoint): the log must still reach it, unchanged")
    v.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    v.set_defaults(func=cmd_audit_verify)
    c = acts.add_parser("checkpoint", help="verify the audit log, then write its head signed with the audit key",
                        description="Keep checkpoints where the database's administrators cannot write; "
                        "`kroniker audit verify --against FILE` then finds a log cut short or rewritten. "
                        "Exit status: 0 written, 1 the log is tampered with (nothing written), 2 cannot be checked.")
    c.add_argument("--database", help="database URL (default: SQLite in $KRONIKER_HOME)")
    c.add_argument("--output", "-o", type=Path, metavar="FILE", help="write it here (default: standard output)")
    c.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    c.set_defaults(func=cmd_audit_checkpoint)
    a.set_defaults(func=lambda args: (a.print_help(sys.stderr), 2)[1])


def _default_lang() -> str:
    env = os.environ.get("KRONIKER_LANG") or os.environ.get("LANG", "")
    return "da" if env.lower().startswith("da") else "en"


def _number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high (a readable usage error otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    return parse


def _embargo(text: str) -> str:
    """An argparse type: CODE=HOURS (a readable usage error otherwise)."""
    from kroniker.reference_server.settings import parse_embargo

    try:
        parse_embargo([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from kroniker.reference_server import audit
    from kroniker.reference_server.db import make_engine, migrate
    from kroniker.reference_server.serve import (
        catch_early_signals,
        message,
        reserve,
        run_one,
        run_workers,
        uvicorn_config,
    )
    from kroniker.reference_server.settings import Settings, parse_embargo
    from kroniker.reference_server.store import Store
    from kroniker.reference_server.tokens import load_or_create_key

    catch_early_signals()
    # The port first: a busy one is refused before anything is migrated or printed as if it had started.
    try:
        sock = reserve(args.host, args.port, shared=args.workers > 1)
    except OSError as exc:
        print(message("port-busy", args.lang, host=args.host, port=args.port, reason=exc.strerror or exc),
              file=sys.stderr)
        return 2
    port = int(sock.getsockname()[1])  # --port 0: the port the system chose, the same for every worker
    try:
        settings = Settings.from_env(database_url=args.database, package_cache=args.cache,
                                     embargo=parse_embargo(args.embargo) or None)
        engine = make_engine(settings.database)
        migrate(engine)  # once, before any worker starts
        load_or_create_key(settings.key_file)
        store = Store(engine, audit.load_or_create_key(settings.audit_key_file))
        store.seal()  # an audit chain from before migration 0003 is re-keyed once, before any worker writes
        store.close()
        if args.database:
            os.environ["KRONIKER_DATABASE"] = args.database
        if args.cache:
            os.environ["KRONIKER_FHIR_PACKAGES"] = str(args.cache)
        if args.citizen_sees_suggestion:
            os.environ["KRONIKER_CITIZEN_SEES_SUGGESTION"] = "1"
        if args.embargo:
            os.environ["KRONIKER_EMBARGO"] = ",".join(args.embargo)
        os.environ["KRONIKER_HOME"] = str(settings.home)
        os.environ["KRONIKER_ACCESS_LOG"] = "1" if args.access_log else "0"  # read by every worker's app
        if args.load:
            from kroniker.reference_server.app import create_app
            from kroniker.reference_server.load import load

            app = create_app(settings, run_migrations=False)
            try:
                loaded = load(app, [p for group in args.load for p in group], f"http://{args.host}:{port}",
                              args.lang)
            finally:
                app.state.ctx.store.close()
            for line in loaded.lines:
                print(line, file=sys.stderr)
            if args.strict and loaded.refused:
                return 1
        print(f"kroniker reference server on http://{args.host}:{port} — database {_safe(settings.database)}",
              file=sys.stderr)
        config = uvicorn_config(args.host, port, args.workers)
        if args.workers <= 1:
            return run_one(config, sock)
        return run_workers(config, args.host, port, args.workers, sock)
    finally:
        sock.close()


def _safe(url: str) -> str:
    """A database URL without its password, for the console."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


def cmd_token(args: argparse.Namespace) -> int:
    from kroniker.reference_server.settings import Settings
    from kroniker.reference_server.tokens import Principal, TokenError, issue, load_or_create_key, missing_identity

    fields = ("role", "cpr", "sor", "ydernummer", "auth_id", "org_name", "name")
    given = {f: getattr(args, f) for f in fields}
    if args.claims_stdin:
        claims = _claims(sys.stdin.read(64 * 1024 + 1))
        if isinstance(claims, str):
            print(f"kroniker token: {claims}", file=sys.stderr)
            return 2
        given = {f: given[f] if given[f] is not None else claims.get(f) for f in fields}
    if given["role"] not in ROLES:
        print(f"kroniker token: --role is required, one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    p = Principal(*(given[f] for f in fields))
    problem = missing_identity(p)
    if problem:
        print(f"kroniker token: {problem}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    try:  # the server would refuse a token that lives longer than its maximum: none is made
        token = issue(load_or_create_key(settings.key_file), p, int(args.hours * 3600),
                      max_lifetime=settings.max_token_lifetime)
    except TokenError as exc:
        print(f"kroniker token: {exc} (KRONIKER_TOKEN_MAX_HOURS)", file=sys.stderr)
        return 2
    print(token)
    return 0


def _claims(text: str) -> dict[str, str] | str:
    """The claims object read by --claims-stdin, or why it cannot be used."""
    if len(text) > 64 * 1024:
        return "the claims on standard input are over 64 KiB"
    try:
        claims = json.loads(text)
    except ValueError as exc:
        return f"the claims on standard input are not JSON ({exc})"
    if not isinstance(claims, dict) or not all(isinstance(v, str) for v in claims.values()):
        return "the claims on standard input must be one JSON object of strings"
    return claims


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from kroniker.reference_server import audit

    try:
        engine, key = _audit_inputs(args)
        checkpoint = audit.read_checkpoint(args.against) if args.against else None
        problems = audit.verify(engine, key, checkpoint)
        counts = _counts(engine) if not problems else (0, 0)
    except audit.Unreadable as exc:
        print(f"kroniker audit verify: {audit.message(exc.key, args.lang, **exc.params)}", file=sys.stderr)
        return 2
    if problems:
        for p in problems:
            print(p.text(args.lang))
        print(audit.message("tampered", args.lang, count=len(problems)), file=sys.stderr)
        return 1
    print(audit.message("intact", args.lang, records=counts[0], documents=counts[1]))
    if checkpoint is not None:
        print(audit.message("intact-checkpoint", args.lang, seq=checkpoint["seq"], time=checkpoint["time"]))
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    from kroniker.reference_server import audit

    try:
        engine, key = _audit_inputs(args)
        problems = audit.verify(engine, key)
        cp = audit.make_checkpoint(engine, key) if not problems else None
    except audit.Unreadable as exc:
        print(f"kroniker audit checkpoint: {audit.message(exc.key, args.lang, **exc.params)}", file=sys.stderr)
        return 2
    if cp is None:  # a checkpoint of a tampered log would vouch for the tampering
        for p in problems:
            print(p.text(args.lang))
        print(audit.message("tampered", args.lang, count=len(problems)), file=sys.stderr)
        return 1
    text = json.dumps(cp, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"kroniker audit checkpoint: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(audit.message("checkpoint-written", args.lang, seq=cp["seq"], path=str(args.output)), file=sys.stderr)
    return 0


def _audit_inputs(args: argparse.Namespace) -> tuple[Engine, bytes]:
    """The database engine and the audit key (never made here: a missing key is 'cannot check', exit 2)."""
    import sqlalchemy as sa

    from kroniker.reference_server import audit
    from kroniker.reference_server.db import make_engine
    from kroniker.reference_server.settings import Settings

    settings = Settings.from_env(database_url=args.database)
    key = audit.load_key(settings.audit_key_file)
    try:
        engine = make_engine(settings.database)
    except (sa.exc.SQLAlchemyError, ValueError, ImportError) as exc:
        raise audit.Unreadable("database", detail=str(exc).splitlines()[0]) from None
    return engine, key


def _counts(engine: Engine) -> tuple[int, int]:
    import sqlalchemy as sa

    from kroniker.reference_server.db import audit_events, documents, reading

    with reading(engine) as conn:
        return (conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one())
