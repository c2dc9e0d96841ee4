"""The care packages' sub-commands: `kroniker package build`, `kroniker questionnaire score|load-licensed`,
`kroniker triage` and `kroniker triage decide`. Each handler imports what it needs when it runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any) -> None:
    pk = sub.add_parser("package", help="build kroniker's own FHIR packages (the care packages) as .tgz")
    pks = pk.add_subparsers(dest="package_command", metavar="ACTION")
    b = pks.add_parser("build", help="build FHIR packages from their source folders (default: the shipped ones)",
                       description="Build FHIR NPM packages (.tgz) from source folders holding package.json and "
                                   "one JSON file per resource. Install them with `kroniker packages install DIR`.")
    b.add_argument("sources", nargs="*", type=Path, metavar="SOURCE",
                   help="a source folder; default every package shipped in profiles/packages")
    b.add_argument("--out", type=Path, default=Path("dist"), help="where the .tgz files go (default ./dist)")
    b.add_argument("--lang", choices=["da", "en"], default=_default_lang())
    b.set_defaults(func=cmd_package_build)
    pk.set_defaults(func=lambda a: _usage(pk))

    q = sub.add_parser("questionnaire", help="score questionnaire responses; load licensed wording")
    qs = q.add_subparsers(dest="questionnaire_command", metavar="ACTION")
    s = qs.add_parser("score", help="validate responses against their Questionnaire and score them",
                      description="Score QuestionnaireResponses by their Questionnaire's own expressions. Prints a "
                                  "JSON array, one object per input in input order. Exit status: 0 all valid, "
                                  "1 a response has errors, 2 usage error or unreadable input.")
    s.add_argument("paths", nargs="+", metavar="PATH", help="a response; a folder; a glob pattern; - for stdin")
    s.add_argument("--observations", action="store_true", help="add the scores as Observations (derivedFrom the "
                                                                 "response) to each object")
    _common(s)
    s.set_defaults(func=cmd_score)
    lic = qs.add_parser("load-licensed", help="a shipped Questionnaire with its texts replaced by licensed wording",
                        description="Replace the paraphrased texts of a shipped Questionnaire by the licensed "
                                    "wording in FILE (linkIds, codes and weights are kept). Prints the Questionnaire.")
    lic.add_argument("file", type=Path, metavar="FILE")
    lic.add_argument("-o", "--output", type=Path, help="write the Questionnaire here instead of standard output")
    _common(lic)
    lic.set_defaults(func=cmd_load_licensed)
    q.set_defaults(func=lambda a: _usage(q))

    t = sub.add_parser("triage", help="suggest red/yellow/green from a patient's response and the GP's assessment",
                       description="Triage by the package's rule set. Prints the suggestion (a ClinicalImpression) "
                                   "with every rule that fired. Exit status as for `kroniker validate`.")
    t.add_argument("--patient-response", type=Path, metavar="R.json")
    t.add_argument("--assessment", type=Path, metavar="A.json", help="the GP's assessment (a QuestionnaireResponse)")
    t.add_argument("--format", choices=["json", "text"], default="json")
    _common(t)
    t.set_defaults(func=cmd_triage)
    ts = t.add_subparsers(dest="triage_command", metavar="ACTION")
    d = ts.add_parser("decide", help="record the GP's decision on a suggestion (approve, or change with a reason)")
    d.add_argument("--suggestion", type=Path, required=True, metavar="S.json")
    d.add_argument("--colour", "--color", required=True, choices=["red", "yellow", "green"])
    d.add_argument("--reason", help="why; required when the colour differs from the suggestion")
    d.add_argument("--assessor", metavar="REFERENCE", help="the GP, as a reference (Practitioner/…)")
    d.add_argument("--format", choices=["json", "text"], default="json")
    d.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    d.set_defaults(func=cmd_decide)


    n = sub.add_parser("note", help="build a care package's note (a MedCom Shared Note) from JSON; read one back")
    ns = n.add_subparsers(dest="note_command", metavar="ACTION")
    nb = ns.add_parser("build", help="a complete Shared Notes document for a package note, from a small JSON input",
                       description="Build a package note (a MedCom Shared Note with the package's event code and "
                                   "its fixed section) from INPUT.json (docs/clinical.md, 'Package notes'). The same "
                                   "input gives the same document. Exit status: 0 built, 2 bad input.")
    nb.add_argument("input", type=Path, metavar="INPUT.json", help="the input; - for standard input")
    nb.add_argument("--package", help="the care package (name or profile url); default: the one installed")
    nb.add_argument("-o", "--output", type=Path, help="write the document here instead of standard output")
    _common(nb)
    nb.set_defaults(func=cmd_note_build)
    nr = ns.add_parser("read", help="the fields of a package note as JSON (what `note build` takes)",
                       description="Read a package note's fields (patient, author, clinic, date, diagnosis, the "
                                   "section's fields, scores, free text). Exit status: 0 read, 1 not a readable "
                                   "package note, 2 unreadable input.")
    nr.add_argument("note", type=Path, metavar="NOTE", help="a Shared Notes document (JSON); - for standard input")
    _common(nr)
    nr.set_defaults(func=cmd_note_read)
    n.set_defaults(func=lambda a: _usage(n))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", choices=["da", "en"], default=_default_lang(), help="language of the messages")
    p.add_argument("--cache", type=Path,
                   help="FHIR package cache (default $KRONIKER_FHIR_PACKAGES, $FHIR_PACKAGE_CACHE or ~/.fhir/packages)")


def _default_lang() -> str:
    env = os.environ.get("KRONIKER_LANG") or os.environ.get("LANG", "")
    return "da" if env.lower().startswith("da") else "en"


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _content(args: argparse.Namespace) -> Any:
    from kroniker import settings
    from kroniker.clinical.content import Content
    from kroniker.validators.packages import PackageCache

    return Content(PackageCache(args.cache or settings.package_cache_dir()))


def _dump(data: Any, out: Path | None = None) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def _read(path: Path) -> tuple[Any, list[Any]]:
    """A JSON document from a file (or '-'), or the finding that says why it cannot be read."""
    from kroniker import settings
    from kroniker.validators.source import Unreadable, parse

    limits = settings.limits()
    try:
        # Standard input is read one byte past the limit at most; parse() then refuses it as too large.
        source: Any = sys.stdin.buffer.read(limits.max_bytes + 1) if str(path) == "-" else path
        return parse(source, limits).data, []
    except Unreadable as exc:
        return None, [exc.finding]


# -- package build -----------------------------------------------------------------------------------------

def cmd_package_build(args: argparse.Namespace) -> int:
    from kroniker.clinical import messages
    from kroniker.clinical.build import BuildError, build, source_folders

    sources = args.sources or source_folders()
    if not sources:
        print(messages.text("package-build-failed", args.lang, detail="no source folders"), file=sys.stderr)
        return EXIT_USAGE
    for folder in sources:
        try:
            built = build(folder, args.out)
        except BuildError as exc:
            print(messages.text("package-build-failed", args.lang, detail=str(exc)), file=sys.stderr)
            return EXIT_USAGE
        print(messages.text("package-built", args.lang, name=built.name, version=built.version, path=built.path,
                            count=built.resources))
    return EXIT_OK


# -- questionnaire score -----------------------------------------------------------------------------------

def cmd_score(args: argparse.Namespace) -> int:
    from kroniker import batch, settings
    from kroniker.clinical import messages
    from kroniker.clinical.scoring import score
    from kroniker.validators import Severity
    from kroniker.validators.findings import finding
    from kroniker.validators.source import Unreadable, parse

    limits = settings.limits()
    try:
        inputs = batch.expand(args.paths, batch.stdin_bytes() if batch.STDIN in args.paths else None, limits)
    except batch.UsageError as exc:
        print(f"kroniker questionnaire score: {messages.text(str(exc), args.lang)}", file=sys.stderr)
        return EXIT_USAGE
    if not inputs:
        print(messages.text("no-input", args.lang), file=sys.stderr)
        return EXIT_USAGE
    content = _content(args)
    out, worst = [], EXIT_OK
    for item in inputs:
        entry: dict[str, Any] = {"source": item.name, "questionnaire": None, "scores": None, "findings": []}
        if item.no_match:
            f = finding(Severity.FATAL, "unreadable", "(document)", (), {"file": item.name, "reason": "@glob-no-match"},
                        message_key="unreadable-file")
            entry["findings"] = [messages.as_dict(f, args.lang)]
            worst = EXIT_USAGE
            out.append(entry)
            continue
        try:
            data = parse(item.data if item.data is not None else item.path, limits).data  # type: ignore[arg-type]
        except Unreadable as exc:
            entry["findings"] = [messages.as_dict(exc.finding, args.lang)]
            worst = EXIT_USAGE
            out.append(entry)
            continue
        scored = score(data, content, source=item.name)
        entry.update({"questionnaire": scored.questionnaire, "scores": scored.scores,
                      "findings": [messages.as_dict(f, args.lang) for f in scored.findings]})
        if args.observations:
            entry["observations"] = scored.observations
        if not scored.valid and worst == EXIT_OK:
            worst = EXIT_FINDINGS
        out.append(entry)
    _dump(out)
    return worst


# -- load-licensed -----------------------------------------------------------------------------------------

def cmd_load_licensed(args: argparse.Namespace) -> int:
    from kroniker.clinical import messages
    from kroniker.clinical.licensed import LicensedError, load_licensed

    data, unreadable = _read(args.file)
    if unreadable:
        print(messages.text("licensed-failed", args.lang, detail=messages.message(unreadable[0], args.lang)),
              file=sys.stderr)
        return EXIT_USAGE
    try:
        loaded = load_licensed(data, _content(args))
    except LicensedError as exc:
        detail = messages.text(exc.key, args.lang, **exc.params)
        print(messages.text("licensed-failed", args.lang, detail=detail), file=sys.stderr)
        return EXIT_USAGE
    _dump(loaded.questionnaire, args.output)
    print(messages.text("licensed-loaded", args.lang, count=loaded.replaced), file=sys.stderr)
    return EXIT_OK


# -- triage ------------------------------------------------------------------------------------------------

def cmd_triage(args: argparse.Namespace) -> int:
    from kroniker.clinical import messages
    from kroniker.clinical.triage import triage

    if args.patient_response is None or args.assessment is None:
        print(messages.text("triage-usage", args.lang), file=sys.stderr)
        return EXIT_USAGE
    patient, bad_p = _read(args.patient_response)
    gp, bad_a = _read(args.assessment)
    if bad_p or bad_a:
        for role, bad in (("patient", bad_p), ("assessment", bad_a)):
            for f in bad:
                print(f"{messages.text(f'role-{role}', args.lang)}: {messages.message(f, args.lang)}", file=sys.stderr)
        return EXIT_USAGE
    result = triage(patient, gp, _content(args))
    if args.format == "text" or result.resource is None:
        for f in result.findings:
            print(f"{f.severity.label.upper()} [{f.code}] {messages.message(f, args.lang)}",
                  file=sys.stdout if args.format == "text" else sys.stderr)
    if result.resource is None:
        return EXIT_FINDINGS
    if args.format == "json":
        _dump(result.resource)
    else:
        print(_triage_text(result, args.lang))
    return EXIT_OK


def _triage_text(result: Any, lang: str) -> str:
    from kroniker.clinical import messages

    lines = [messages.text("triage-heading", lang, colour=messages.text(f"colour-{result.colour or 'none'}", lang))]
    if result.provisional:
        lines.append(messages.text("triage-provisional", lang, note=result.note.get(lang, "")))
    lines.append(messages.text("triage-ruleset", lang, ruleset=result.rule_set.canonical))
    for fired in result.fired:
        inputs = ", ".join(f"{c['linkId']} = {_shown(v)}" for c, v in fired.values)
        lines.append(messages.text("triage-fired", lang, significance=messages.text(
            f"colour-{fired.significance}", lang), rule=fired.rule["id"],
            text=(fired.rule.get("text") or {}).get(lang, ""), inputs=inputs))
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    v = value[1]
    return str(v.get("code")) if isinstance(v, dict) else str(v)


def cmd_decide(args: argparse.Namespace) -> int:
    from kroniker.clinical import messages
    from kroniker.clinical.triage import decide

    suggestion, bad = _read(args.suggestion)
    if bad:
        print(messages.message(bad[0], args.lang), file=sys.stderr)
        return EXIT_USAGE
    assessor = {"reference": args.assessor} if args.assessor else None
    result = decide(suggestion, args.colour, reason=args.reason, assessor=assessor)
    for f in result.findings:
        print(f"{f.severity.label.upper()} [{f.code}] {messages.message(f, args.lang)}", file=sys.stderr)
    if result.resource is None:
        return EXIT_FINDINGS
    if args.format == "json":
        _dump(result.resource)
    else:
        decision = result.resource["extension"][0]["valueCodeableConcept"]["coding"][-1]["code"]
        print(messages.text("decision-heading", lang=args.lang,
                            colour=messages.text(f"colour-{result.colour}", args.lang), decision=decision,
                            suggested=messages.text(f"colour-{result.suggested or 'none'}", args.lang)))
        if args.reason:
            print(messages.text("decision-reason", args.lang, reason=args.reason))
    return EXIT_OK


# -- note build / read -------------------------------------------------------------------------------------

def cmd_note_build(args: argparse.Namespace) -> int:
    from kroniker.clinical import messages
    from kroniker.clinical.note import NoteError, build_note

    data, bad = _read(args.input)
    if bad:
        print(messages.text("note-failed", args.lang, detail=messages.message(bad[0], args.lang)), file=sys.stderr)
        return EXIT_USAGE
    try:
        doc = build_note(data, _content(args), args.package)
    except NoteError as exc:
        params = dict(exc.params)
        if "package" in params:
            params["package"] = f" ({params['package']})" if params["package"] else ""
        print(messages.text("note-failed", args.lang, detail=messages.text(exc.key, args.lang, **params)),
              file=sys.stderr)
        return EXIT_USAGE
    _dump(doc, args.output)
    return EXIT_OK


def cmd_note_read(args: argparse.Namespace) -> int:
    from kroniker.clinical import messages
    from kroniker.clinical.note import NoteError, read_note

    data, bad = _read(args.note)
    if bad:
        print(messages.text("note-failed", args.lang, detail=messages.message(bad[0], args.lang)), file=sys.stderr)
        return EXIT_USAGE
    try:
        fields = read_note(data, _content(args))
    except NoteError as exc:
        print(messages.text("note-failed", args.lang, detail=messages.text(exc.key, args.lang, **exc.params)),
              file=sys.stderr)
        return EXIT_FINDINGS
    _dump(fields)
    return EXIT_OK
