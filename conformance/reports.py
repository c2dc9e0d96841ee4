"""Reports of a session record: an HTML page a reviewer reads (requirement → test cases → evidence), JUnit XML for
CI, and an evidence bundle (zip) with one folder per test case."""

from __future__ import annotations

import io
import json
import re
import zipfile
from functools import cache
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from kroniker.conformance import requirements as reqs
from kroniker.conformance.steps import body_bytes, step_message


@cache
def texts(lang: str) -> dict[str, str]:
    return dict(_texts(lang))


@cache
def _texts(lang: str) -> dict[str, str]:
    raw = resources.files("kroniker.conformance").joinpath(f"messages/{lang}.json").read_text(encoding="utf-8")
    return dict(json.loads(raw))


def text(key: str, lang: str, **params: Any) -> str:
    return texts(lang).get(key, key).format(**params)


def summary_line(record: dict[str, Any], lang: str) -> str:
    c, r = record["summary"]["cases"], record["summary"]["requirements"]
    n = sum(c.values())
    return text("summary-one" if n == 1 else "summary", lang, cases=n, passed=c.get("passed", 0),
                failed=c.get("failed", 0), error=c.get("error", 0), req_passed=r.get("passed", 0),
                req_failed=r.get("failed", 0))


def why(case: dict[str, Any] | None, requirement: str, ref: dict[str, Any], lang: str) -> str:
    """Why a case gave a requirement its result, in `lang` where the record has it (a document's findings)."""
    verdict = (case or {}).get("verdicts", {}).get(requirement)
    if verdict is not None and lang == "en" and "findings_en" in verdict:
        return "; ".join(verdict["findings_en"])
    return str(ref.get("why", ""))


def _pretty(body: dict[str, str]) -> str:
    if "base64" in body:
        return f"(base64, {len(body_bytes(body))} bytes)"
    raw = body.get("text", "")
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False, indent=2)
    except ValueError:
        return raw


def html(record: dict[str, Any], lang: str = "da") -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("kroniker.conformance", "templates"), autoescape=select_autoescape(),
                      trim_blocks=True, lstrip_blocks=True)
    catalogue = reqs.load()
    cases = {c["id"]: c for c in record["cases"]}
    rows = [{"req": catalogue.by_id.get(r["id"]), **r} for r in record["requirements"]]
    return env.get_template("report.html").render(
        r=record, rows=rows, cases=cases, lang=lang, t=lambda k, **p: text(k, lang, **p), pretty=_pretty,
        step_message=lambda s: step_message(s, lang), why=lambda c, rid, ref: why(c, rid, ref, lang),
        summary=summary_line(record, lang), grades=catalogue.grades)


def junit(record: dict[str, Any], lang: str = "da") -> str:
    """One <testsuite> per feature file, one <testcase> per test case; its requirements as properties."""
    by_uri: dict[str, list[dict[str, Any]]] = {}
    for c in record["cases"]:
        by_uri.setdefault(c["uri"], []).append(c)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="kroniker conformance" tests="{len(record["cases"])}" '
           f'failures="{sum(c["status"] == "failed" for c in record["cases"])}" '
           f'errors="{sum(c["status"] == "error" for c in record["cases"])}" time="{record.get("seconds", 0)}">']
    for uri, cs in by_uri.items():
        out.append(f'  <testsuite name={quoteattr(uri)} tests="{len(cs)}" '
                   f'failures="{sum(c["status"] == "failed" for c in cs)}" '
                   f'errors="{sum(c["status"] == "error" for c in cs)}">')
        for c in cs:
            name = c["name"] + (f" [{c['document']}]" if c.get("document") else "")
            out.append(f"    <testcase classname={quoteattr(uri)} name={quoteattr(name)}>")
            out.append("      <properties>" + "".join(
                f'<property name="krav" value={quoteattr(rid)}/>' for rid in c["requirements"]) + "</properties>")
            failing = [s for s in c["steps"] if s["status"] in ("failed", "error", "undefined")]
            broken = c.get("broken", {})
            if c["status"] != "passed" or broken:
                tag = "failure" if c["status"] in ("failed", "passed") else "error"
                msg = "; ".join([f"{s['keyword']} {s['text']}: {step_message(s, lang)}" for s in failing]
                                + [f"{rid}: {why}" for rid, why in broken.items()])
                out.append(f"      <{tag} message={quoteattr(msg[:1000])}>{escape(msg)}</{tag}>")
            out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def folder_name(i: int, case: dict[str, Any]) -> str:
    """A test case's folder in the bundle: its number and where it is written (feature, line, document)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", case["id"].replace(".feature:", "_")).strip("_")
    return f"{i:03d}_{slug}"[:120]


def _letter(n: int) -> str:
    """A, B, …, Z, AA, AB, …: MedCom's letter for the n-th (0-based) file of a protocol step."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("A") + r) + out
    return out


def medcom_files(record: dict[str, Any], lang: str = "da") -> dict[str, str]:
    """The evidence of each requirement that is one of MedCom's test protocol steps, named as MedCom's protocols
    name a vendor's files (`<Standard>_<step>_<letter>.<ext>`, e.g. `ConditionList_3.3.1.6_A.json`): one file per test
    case of that step, lettered in the record's order, with the result, the document and the case's folder."""
    catalogue = reqs.load()
    folders = {c["id"]: folder_name(i, c) for i, c in enumerate(record["cases"], start=1)}
    cases = {c["id"]: c for c in record["cases"]}
    sha = {d["name"]: d["sha256"] for d in record.get("inputs", {}).get("documents", [])}
    out: dict[str, str] = {}
    for r in record["requirements"]:
        req = catalogue.by_id.get(r["id"])
        if req is None or not req.medcom:
            continue
        for n, ref in enumerate(r["cases"]):
            c = cases.get(ref["id"], {})
            verdict = c.get("verdicts", {}).get(r["id"], {})
            out[f"{req.medcom['name']}_{req.medcom['step']}_{_letter(n)}.json"] = json.dumps({
                "protocol": req.medcom["protocol"], "step": req.medcom["step"], "requirement": r["id"],
                "text": req.text[lang], "grade": req.grade, "result": ref["status"],
                "result_text": text(ref["status"], lang), "case": ref["id"], "folder": folders.get(ref["id"]),
                "document": c.get("document"), "sha256": sha.get(c.get("document") or ""),
                "findings": verdict.get("findings", []),
            }, ensure_ascii=False, indent=1)
    return out


def evidence_zip(record: dict[str, Any], lang: str = "da") -> bytes:
    """record.json, report.html and junit.xml at the top, and one folder per test case: the case and its result
    (case.json), each exchange as NN-request and NN-response, and the other observations."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("record.json", json.dumps(record, ensure_ascii=False, indent=1))
        z.writestr("report.html", html(record, lang))
        z.writestr("junit.xml", junit(record, lang))
        for i, c in enumerate(record["cases"], start=1):
            folder = folder_name(i, c)
            z.writestr(f"{folder}/case.json", json.dumps({k: v for k, v in c.items() if k != "evidence"},
                                                         ensure_ascii=False, indent=1))
            for n, ex in enumerate(c["evidence"]["exchanges"], start=1):
                req, res = ex["request"], ex["response"]
                head = [f"{req['method']} {req['path']}"] + [f"{k}: {v}" for k, v in req["headers"].items()]
                if req.get("caller"):
                    head.append(f"Authorization: Bearer <{req['caller']}>")
                z.writestr(f"{folder}/{n:02d}-request.http", "\n".join(head) + "\n\n" + _pretty(req["body"]))
                head = [f"HTTP {res['status']}"] + [f"{k}: {v}" for k, v in res["headers"].items()]
                z.writestr(f"{folder}/{n:02d}-response.http", "\n".join(head) + "\n\n" + _pretty(res["body"]))
            if c["evidence"]["observations"]:
                z.writestr(f"{folder}/observations.json",
                           json.dumps(c["evidence"]["observations"], ensure_ascii=False, indent=1))
        for name, content in medcom_files(record, lang).items():
            z.writestr(f"medcom/{name}", content)
    return buf.getvalue()
