"""`kroniker serve`, `kroniker token`, `kroniker audit verify`: the reference server's sub-commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kroniker.reference_server.tokens import ROLES


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("serve", help="run the DDS-like reference server (SQLite by default, PostgreSQL by URL)")
    s.add_argument("--database", help="database URL (default: SQLite in $KRONIKER_HOME)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_number(0, 65535), default=8080)
    s.add_argument("--workers", type=_number(1, 256), default=1, help="worker processes (one per CPU)")
    s.add_argument("--cache", type=Path, help="FHIR package cache (default ~/.fhir/packages)")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("token", help="print a bearer token for a role, signed with this data directory's key")
    t.add_argument("--role", required=True, choices=ROLES)
    t.add_argument("--cpr")
    t.add_argument("--sor")
    t.add_argument("--ydernummer")
    t.add_argument("--auth-id", dest="auth_id")
    t.add_argument("--org-name", dest="org_name")
    t.add_argument("--name")
    t.add_argument("--hours", type=float, default=12.0,
                   help="how long the token is valid (at most KRONIKER_TOKEN_MAX_HOURS, default 24)")
    t.set_defaults(func=cmd_token)

    a = sub.add_parser("audit", help="the audit log")
    acts = a.add_subparsers(dest="audit_command", metavar="ACTION")
    v = acts.add_parser("verify", help="check the audit log's hash chain for tampering")
    v.add_argument("--database", help="database URL (default: SQLite in $KRONIKER_HOME)")
    v.set_defaults(func=cmd_audit_verify)
    a.set_defaults(func=lambda args: (a.print_help(sys.stderr), 2)[1])


def _number(low: int, high: int):  # type: ignore[no-untyped-def]
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


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from kroniker.reference_server.db import make_engine, migrate
    from kroniker.reference_server.settings import Settings
    from kroniker.reference_server.tokens import load_or_create_key

    settings = Settings.from_env(database_url=args.database, package_cache=args.cache)
    migrate(make_engine(settings.database))  # once, before any worker starts
    load_or_create_key(settings.key_file)
    if args.database:
        os.environ["KRONIKER_DATABASE"] = args.database
    if args.cache:
        os.environ["KRONIKER_FHIR_PACKAGES"] = str(args.cache)
    os.environ["KRONIKER_HOME"] = str(settings.home)
    print(f"kroniker reference server on http://{args.host}:{args.port} — database {_safe(settings.database)}",
          file=sys.stderr)
    from kroniker.reference_server.serve import run_workers, uvicorn_config

    config = uvicorn_config(args.host, args.port, args.workers)
    if args.workers <= 1:
        uvicorn.Server(config).run()
        return 0
    return run_workers(config, args.host, args.port, args.workers)


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

    p = Principal(args.role, args.cpr, args.sor, args.ydernummer, args.auth_id, args.org_name, args.name)
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


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from kroniker.reference_server import audit
    from kroniker.reference_server.db import make_engine
    from kroniker.reference_server.settings import Settings

    settings = Settings.from_env(database_url=args.database)
    problems = audit.verify(make_engine(settings.database))
    if not problems:
        print("the audit log is intact: every record chains to the one before it")
        return 0
    for p in problems:
        print(f"record {p.seq}: {p.problem}")
    return 1
