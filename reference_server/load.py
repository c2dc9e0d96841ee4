"""`kroniker serve --load PATH…`: documents shared on start, before serving, through the server's own submission
route, each as its author's GP system; then the package notes among them looked up by the package's event code.

Each document is validated first (a refused one is reported with its findings' summary); a valid one is sent to
`POST /fhir/Bundle` of the app itself (in process, no socket) with a `source` token for the SOR of the document's
author institution, named `kroniker serve --load`: it is audited as that GP system's submission. An identical
resubmission answers 200, so loading the same files again changes nothing. For each patient with a loaded package
note, the package search (`event=<system>|<code>`) runs as that citizen (own documents: audited, not in MinLog),
token named `kroniker serve --load` too; the count it finds is printed, never the CPR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from kroniker.reference_server.metadata import MetadataError, derive
from kroniker.reference_server.tokens import Principal, issue
from kroniker.validators.findings import Severity, finding
from kroniker.validators.source import Unreadable, parse, read_bytes

ACTOR = "kroniker serve --load"
CPR = "urn:oid:1.2.208.176.1.2"

MESSAGES = {
    "refused": {"en": "kroniker serve --load: {name}: refused, {count} error(s): {first}",
                "da": "kroniker serve --load: {name}: afvist, {count} fejl: {first}"},
    "not-shared": {"en": "kroniker serve --load: {name}: refused by the server ({status}): {first}",
                   "da": "kroniker serve --load: {name}: afvist af serveren ({status}): {first}"},
    "summary": {"en": "kroniker serve --load: {loaded} document(s) loaded, {refused} refused",
                "da": "kroniker serve --load: {loaded} dokument(er) indlæst, {refused} afvist"},
    "package": {"en": "kroniker serve --load: {loaded} package note(s) loaded; found by the package's event code "
                      "{code}: {found}",
                "da": "kroniker serve --load: {loaded} pakkenotat(er) indlæst; fundet ved pakkens hændelseskode "
                      "{code}: {found}"},
}


def text(key: str, lang: str, **params: Any) -> str:
    return MESSAGES[key]["da" if lang == "da" else "en"].format(**params)


@dataclass
class Loaded:
    lines: list[str] = field(default_factory=list)
    loaded: int = 0
    refused: int = 0
    package_notes: dict[str, list[str]] = field(default_factory=dict)  # "system|code" → patients (one per note)
    found: dict[str, int] = field(default_factory=dict)  # "system|code" → documents the package search found


def load(app: Any, paths: list[str], base_url: str, lang: str) -> Loaded:
    return anyio.run(_load, app, paths, base_url, lang)


async def _load(app: Any, paths: list[str], base_url: str, lang: str) -> Loaded:
    from kroniker.batch import expand
    from kroniker.validators.package_notes import claimed, package_profiles
    from kroniker.validators.render import operation_outcome

    ctx = app.state.ctx
    out = Loaded()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=None) as client:
        for item in expand(paths, None, ctx.validator.limits):
            report, body, meta, claim = None, b"", None, None
            try:
                if item.path is None:  # a pattern that matched nothing
                    raise Unreadable(finding(Severity.FATAL, "unreadable", "(document)", (),
                                             {"file": item.name, "reason": "@glob-no-match"},
                                             message_key="unreadable-file"))
                _, body = read_bytes(item.path, ctx.validator.limits)
                parsed = parse(body, ctx.validator.limits)
                report = ctx.validator.validate_parsed(parsed)
                if report.valid and report.standard is not None:
                    meta = derive(parsed.data, report.standard.name, report.standard.version,
                                  "application/fhir+json", body)
                    pkg = ctx.validator.cache.get(report.standard.name, report.standard.version)
                    comp = parsed.data["entry"][0]["resource"]
                    claim = claimed(comp, package_profiles(ctx.validator.cache, pkg)) if pkg else None
            except Unreadable as exc:
                out.refused += 1
                out.lines.append(text("refused", lang, name=item.name, count=1,
                                      first=exc.finding.message(lang)))
                continue
            except (MetadataError, KeyError, IndexError, TypeError) as exc:
                out.refused += 1
                out.lines.append(text("refused", lang, name=item.name, count=1, first=str(exc)))
                continue
            if meta is None:
                assert report is not None
                oo = operation_outcome(report, lang)
                errors = [i["diagnostics"] for i in oo["issue"] if i["severity"] in ("error", "fatal")]
                out.refused += 1
                out.lines.append(text("refused", lang, name=item.name, count=len(errors),
                                      first=errors[0] if errors else "-"))
                continue
            token = issue(ctx.key, Principal("source", sor=meta.author_org_sor, name=ACTOR))
            r = await client.post("/fhir/Bundle", content=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": _media_type(body),
                "Accept-Language": lang})
            if r.status_code not in (200, 201):
                issues = r.json().get("issue", [{}])
                out.refused += 1
                out.lines.append(text("not-shared", lang, name=item.name, status=r.status_code,
                                      first=issues[0].get("diagnostics", "-")))
                continue
            out.loaded += 1
            if claim is not None:
                code = f"{claim.codes[0][0]}|{claim.codes[0][1]}"
                out.package_notes.setdefault(code, []).append(meta.patient_cpr)
        for code, patients in out.package_notes.items():
            out.found[code] = 0
            for cpr in sorted(set(patients)):
                token = issue(ctx.key, Principal("citizen", cpr=cpr, name=ACTOR))
                r = await client.get("/fhir/DocumentReference", params={
                    "patient.identifier": f"{CPR}|{cpr}", "status": "current", "event": code},
                    headers={"Authorization": f"Bearer {token}"})
                if r.status_code == 200:
                    out.found[code] += len(r.json().get("entry", []))
    out.lines.append(text("summary", lang, loaded=out.loaded, refused=out.refused))
    for code, patients in out.package_notes.items():
        out.lines.append(text("package", lang, loaded=len(patients), code=code, found=out.found[code]))
    return out


def _media_type(body: bytes) -> str:
    return "application/fhir+xml" if body.lstrip()[:1] == b"<" else "application/fhir+json"
