"""The one command, `kroniker`, with a sub-command per part of the toolkit."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from kroniker import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _default_lang() -> str:
    env = os.environ.get("KRONIKER_LANG") or os.environ.get("LANG", "")
    return "da" if env.lower().startswith("da") else "en"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kroniker", description="Toolkit for the Danish chronic care package: "
                                "validate MedCom Shared Notes and diagnosis cards against MedCom's FHIR packages.")
    p.add_argument("--version", action="version", version=f"kroniker {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="validate documents (FHIR JSON) against the installed MedCom packages",
                       description="Validate documents. Exit status: 0 no errors, 1 errors found, "
                                   "2 usage error or unreadable input.")
    v.add_argument("paths", nargs="+", metavar="PATH", help="a document, or a folder searched for *.json")
    v.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    v.add_argument("--format", choices=["text", "json"], default="text",
                   help="text for people; json: one OperationOutcome per document (a Bundle of them for several)")
    v.add_argument("--verbose", "-v", action="store_true", help="show information messages and profile elements")
    v.add_argument("--cache", type=Path, help="FHIR package cache (default ~/.fhir/packages)")
    v.set_defaults(func=cmd_validate)

    pk = sub.add_parser("packages", help="install and list FHIR packages in the package cache")
    pks = pk.add_subparsers(dest="packages_command", metavar="ACTION")
    inst = pks.add_parser("install", help="install NAME#VERSION, a .tgz file, or a folder (of .tgz files or unpacked)")
    inst.add_argument("specs", nargs="+", metavar="SPEC")
    inst.add_argument("--from", dest="sources", action="append", type=Path, default=[],
                      help="a folder of .tgz files to take NAME#VERSION from before asking a registry")
    inst.add_argument("--registry", action="append", help="FHIR package registry URL (default packages.fhir.org)")
    inst.add_argument("--no-deps", action="store_true", help="do not fetch dependencies")
    inst.add_argument("--cache", type=Path, help="FHIR package cache (default ~/.fhir/packages)")
    inst.set_defaults(func=cmd_packages_install)
    ls = pks.add_parser("list", help="list the installed packages")
    ls.add_argument("--cache", type=Path, help="FHIR package cache (default ~/.fhir/packages)")
    ls.add_argument("--format", choices=["text", "json"], default="text")
    ls.set_defaults(func=cmd_packages_list)
    pk.set_defaults(func=lambda a: _usage(pk))
    return p


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


# -- validate ------------------------------------------------------------------------------------------

def _expand(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(x for x in p.rglob("*.json") if x.is_file())
        else:
            yield p


def cmd_validate(args: argparse.Namespace) -> int:
    from kroniker.validators import Severity
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.render import operation_outcome, outcome_bundle, text
    from kroniker.validators.validate import Validator

    validator = Validator(PackageCache(args.cache) if args.cache else None)
    started = time.perf_counter()
    reports = [validator.validate(path) for path in _expand(args.paths)]
    if not reports:
        print(_msg(args.lang, "no-input"), file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        doc = operation_outcome(reports[0], args.lang) if len(reports) == 1 else outcome_bundle(reports, args.lang)
        json.dump(doc, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for r in reports:
            print(text(r, args.lang, verbose=args.verbose))
        if len(reports) > 1:
            from kroniker.validators import messages

            print(messages.text("summary", args.lang, documents=len(reports), valid=sum(r.valid for r in reports),
                                errors=sum(not r.valid for r in reports),
                                warnings=sum(any(f.severity == Severity.WARNING for f in r.findings) for r in reports),
                                seconds=time.perf_counter() - started))
    if any(f.severity == Severity.FATAL for r in reports for f in r.findings):
        return EXIT_USAGE
    return EXIT_FINDINGS if any(not r.valid for r in reports) else EXIT_OK


# -- packages ------------------------------------------------------------------------------------------

def cmd_packages_install(args: argparse.Namespace) -> int:
    from kroniker.validators.packages import Installer, PackageCache, PackageError

    cache = PackageCache(args.cache)
    installer = Installer(cache, sources=args.sources, registries=args.registry)
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

        print("package-missing: these dependencies are not installed:")
        needed: dict[str, list[str]] = {}
        for name, version, needed_by in report.missing:
            needed.setdefault(f"{name}#{version}", []).append(needed_by)
        for spec, by in sorted(needed.items()):
            name = spec.split("#", 1)[0]
            stand_ins = {"base-structure": "; kroniker reads the base structure from fhir.resources",
                         "base-codes": "; kroniker has the base code lists it needs"}
            stand_in = stand_ins.get(SUBSTITUTES.get(name) or "", "")
            who = by[0] if len(by) == 1 else f"{by[0]} and {len(by) - 1} more"
            print(f"  {spec}  (needed by {who}{stand_in})")
    return EXIT_OK


def cmd_packages_list(args: argparse.Namespace) -> int:
    from kroniker.validators.packages import PackageCache

    cache = PackageCache(args.cache)
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


def _msg(lang: str, key: str) -> str:
    texts = {"no-input": {"da": "ingen dokumenter fundet", "en": "no documents found"}}
    return texts[key][lang]


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")  # never die half-way through the output
    parser = build_parser()
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
