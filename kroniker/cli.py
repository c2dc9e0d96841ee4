"""The one command, `kroniker`, with a sub-command per part of the toolkit.

Start-up matters (a vendor's CI runs `kroniker validate` per document): this module imports only the standard
library at the top, and each sub-command imports what it needs when it runs. The server's and the DPIA
register's sub-commands are only added to the parser when one of them (or the overview) is asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kroniker import __version__

if TYPE_CHECKING:
    from kroniker.validators.findings import Report

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "junit", "html")


def _default_lang() -> str:
    env = os.environ.get("KRONIKER_LANG") or os.environ.get("LANG", "")
    return "da" if env.lower().startswith("da") else "en"


OWN_COMMANDS = ("validate", "packages")
CACHE_HELP = "FHIR package cache (default $KRONIKER_FHIR_PACKAGES, else ~/.fhir/packages)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; for `command` one of OWN_COMMANDS, without the other parts' sub-commands (their imports)."""
    p = argparse.ArgumentParser(prog="kroniker", description="Toolkit for the Danish chronic care package: "
                                "validate MedCom Shared Notes and diagnosis cards against MedCom's FHIR packages.")
    p.add_argument("--version", action="version", version=f"kroniker {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="validate documents (FHIR JSON) against the installed MedCom packages",
                       description="Validate documents. Exit status: 0 no errors, 1 errors found, "
                                   "2 usage error or unreadable input.")
    v.add_argument("paths", nargs="+", metavar="PATH",
                   help="a document; a folder (every *.json and *.xml below it); a glob pattern, ** for any depth "
                        "(quote it); - for standard input")
    v.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    v.add_argument("--format", choices=FORMATS, default="text",
                   help="text for people; json: one OperationOutcome per document (a Bundle of them for several); "
                        "junit: JUnit XML for CI; html: one self-contained page to read and forward")
    v.add_argument("--verbose", "-v", action="store_true", help="show information messages and profile elements")
    v.add_argument("--cache", type=Path, help=CACHE_HELP)
    v.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N",
                   help="validate in N processes (0: one per CPU; default 1)")
    v.set_defaults(func=cmd_validate)

    pk = sub.add_parser("packages", help="install and list FHIR packages in the package cache")
    pks = pk.add_subparsers(dest="packages_command", metavar="ACTION")
    inst = pks.add_parser("install", help="install NAME#VERSION, a .tgz file, or a folder (of .tgz files or unpacked)")
    inst.add_argument("specs", nargs="+", metavar="SPEC")
    inst.add_argument("--from", dest="sources", action="append", type=Path, default=[],
                      help="a folder of .tgz files to take NAME#VERSION from before asking a registry")
    inst.add_argument("--registry", action="append", help="FHIR package registry URL (default packages.fhir.org)")
    inst.add_argument("--no-deps", action="store_true", help="do not fetch dependencies")
    inst.add_argument("--cache", type=Path, help=CACHE_HELP)
    inst.set_defaults(func=cmd_packages_install)
    ls = pks.add_parser("list", help="list the installed packages")
    ls.add_argument("--cache", type=Path, help=CACHE_HELP)
    ls.add_argument("--format", choices=["text", "json"], default="text")
    ls.set_defaults(func=cmd_packages_list)
    pk.set_defaults(func=lambda a: _usage(pk))
    if command in OWN_COMMANDS:
        return p
    # The other parts bring their own sub-commands (no part imports this module).
    from kroniker.dpia.cli import add_parser as add_dpia
    from kroniker.reference_server.cli import add_parsers as add_server

    add_server(sub)
    add_dpia(sub)
    # -- care packages (clinical): package build, questionnaire, triage; handlers import lazily --------------
    from kroniker.clinical.cli import add_parsers as add_clinical

    add_clinical(sub)
    # -- conformance runs; handlers import lazily
    from kroniker.conformance.cli import add_parser as add_conformance

    add_conformance(sub)
    return p


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {n}")
    return n


# -- validate ------------------------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    from kroniker import batch, settings
    from kroniker.validators import Severity, messages

    limits = settings.limits()
    try:
        inputs = batch.expand(args.paths, batch.stdin_bytes() if batch.STDIN in args.paths else None, limits)
    except batch.UsageError as exc:
        print(f"kroniker validate: {messages.text(str(exc), args.lang)}", file=sys.stderr)
        return EXIT_USAGE
    if not inputs:
        print(messages.text("no-input", args.lang), file=sys.stderr)
        return EXIT_USAGE
    started_at, started = datetime.now().astimezone(), time.perf_counter()
    bar = _ProgressBar(args.lang)
    try:
        reports = batch.run(inputs, args.cache or settings.package_cache_dir(), limits, settings.plan_store(),
                            jobs=args.jobs or batch.default_jobs(), progress=bar.start if bar.wanted() else None)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    _print_reports(args, reports, started_at, seconds)
    if any(f.severity == Severity.FATAL for r in reports for f in r.findings):
        return EXIT_USAGE
    return EXIT_FINDINGS if any(not r.valid for r in reports) else EXIT_OK


def _print_reports(args: argparse.Namespace, reports: list[Report], started_at: datetime, seconds: float) -> None:
    """The reports on stdout in the chosen format; the summary line after them (on stderr for the formats a
    program reads, so that stdout stays one JSON, XML or HTML document)."""
    from kroniker.validators import render

    lang, verbose = args.lang, args.verbose
    if args.format == "text":
        for r in reports:
            print(render.text(r, lang, verbose=verbose))
        print(render.validated_against(reports, lang))
    elif args.format == "json":
        doc = render.operation_outcome(reports[0], lang) if len(reports) == 1 else render.outcome_bundle(reports, lang)
        json.dump(doc, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif args.format == "junit":
        from kroniker.validators.junit import junit

        render.write_utf8(junit(reports, lang, verbose=verbose, started=started_at, seconds=seconds))
    else:
        from kroniker.validators.html_report import html_report

        render.write_utf8(html_report(reports, lang, verbose=verbose, made=started_at, seconds=seconds))
    if len(reports) > 1:
        print(render.summary(reports, lang, seconds), file=sys.stdout if args.format == "text" else sys.stderr)




class _ProgressBar:
    """A progress bar on stderr, only when a person watches both stdout and stderr in a terminal."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.bar: Any = None

    @staticmethod
    def wanted() -> bool:
        return all(_is_tty(s) for s in (sys.stdout, sys.stderr))

    def start(self, total: int) -> Callable[[], None]:
        from tqdm import tqdm

        from kroniker.validators import messages

        self.bar = tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True,
                        desc=messages.text("progress-desc", self.lang), unit=messages.text("progress-unit", self.lang))
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# -- packages ------------------------------------------------------------------------------------------

def cmd_packages_install(args: argparse.Namespace) -> int:
    from kroniker import settings
    from kroniker.packages import Installer, PackageError
    from kroniker.validators.packages import PackageCache

    cache = PackageCache(args.cache or settings.package_cache_dir())
    installer = Installer(cache, sources=args.sources, registries=args.registry or settings.registries())
    try:
        report = installer.install(args.specs, with_dependencies=not args.no_deps)
    except PackageError as exc:
        print(f"kroniker packages install: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for ref in report.installed:
        print(f"installed  {ref}  ({cache.root})")
    for ref in report.already:
        print(f"present    {ref}")
    if report.missing:
        from kroniker.validators.packages import SUBSTITUTES

        # One line per package, its versions together: what is missing, and whether kroniker needs it.
        versions: dict[str, set[str]] = {}
        needed_by: dict[str, set[str]] = {}
        for name, version, needer in report.missing:
            versions.setdefault(name, set()).add(version)
            needed_by.setdefault(name, set()).add(needer)
        stand_ins = {"base-structure": "kroniker reads the base structure from fhir.resources",
                     "base-codes": "kroniker has the base code lists it needs"}
        count = sum(len(v) for v in versions.values())
        print(f"package-missing: {count} dependencies ({len(versions)} packages) are not installed:")
        for name in sorted(versions, key=lambda n: (SUBSTITUTES.get(n) is not None, n)):
            needers = sorted(needed_by[name])
            who = needers[0] if len(needers) == 1 else f"{len(needers)} packages"
            stand_in = stand_ins.get(SUBSTITUTES.get(name) or "")
            print(f"  {name} {', '.join(sorted(versions[name]))}  (needed by {who})"
                  + (f": {stand_in}" if stand_in else ""))
        print("  A document whose profiles need a missing package is reported with the finding package-missing, "
              "never passed silently; online, `kroniker packages install NAME#VERSION` installs one.")
    return EXIT_OK


def cmd_packages_list(args: argparse.Namespace) -> int:
    from kroniker import settings
    from kroniker.validators.packages import PackageCache

    cache = PackageCache(args.cache or settings.package_cache_dir())
    pkgs = cache.installed()
    if args.format == "json":
        json.dump([{"name": p.name, "version": p.version, "sha256": p.sha256, "path": str(p.path),
                    "dependencies": p.dependencies,
                    "missing": [f"{n}#{v}" for n, v in p.dependencies.items() if cache.get(n, v) is None]}
                   for p in pkgs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not pkgs:
        print(f"no packages in {cache.root}")
        return EXIT_OK
    print(f"{cache.root}:")
    for p in pkgs:
        missing = [f"{n}#{v}" for n, v in p.dependencies.items() if cache.get(n, v) is None]
        note = f"   missing: {', '.join(missing)}" if missing else ""
        print(f"  {p.name}#{p.version}  sha256:{p.sha256[:12]}{note}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")  # never die half-way through the output
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        return _usage(parser)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: a message, never a traceback
        if os.environ.get("KRONIKER_DEBUG"):
            raise
        print(f"kroniker: {type(exc).__name__}: {exc} (set KRONIKER_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
