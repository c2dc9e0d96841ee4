"""Responses to the low back pain package's questionnaires, as a GP system or WebPatient would send them, and a
package cache holding kroniker's own packages (built and installed by the public commands)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kroniker.cli import main

LBP = "https://kroniker.example/fhir/lbp"
ANSWERS = f"{LBP}/CodeSystem/answers"
PATIENT_Q = f"{LBP}/Questionnaire/lbp-patient|0.1.0"
ASSESSMENT_Q = f"{LBP}/Questionnaire/lbp-gp-assessment|0.1.0"
CPR = {"system": "urn:oid:1.2.208.176.1.2", "value": "3001749995"}
BOTHERSOME = ("not-at-all", "slightly", "moderately", "very-much", "extremely")


def run(*argv: str) -> tuple[int, str, str]:
    """`kroniker ARGV…` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def install_packages(cache: Path, dist: Path, sources: Sequence[Path] = ()) -> None:
    code, _, err = run("package", "build", *map(str, sources), "--out", str(dist))
    assert code == 0, err
    code, _, err = run("packages", "install", str(dist), "--no-deps", "--cache", str(cache))
    assert code == 0, err


def coding(code: str, system: str = ANSWERS) -> dict[str, Any]:
    return {"valueCoding": {"system": system, "code": code}}


def patient_response(startback: Sequence[bool] = (False,) * 8, bothersome: str = "slightly",
                     odi: Sequence[int | None] | None = (1, 1, 1, 1, 1, 1, 1, None, 1, 1), sils: str = "never",
                     chew: str | None = "conf-extremely", rid: str = "patient-1", status: str = "completed",
                     questionnaire: str = PATIENT_Q) -> dict[str, Any]:
    """The patient's questionnaire: items 1-8 of STarT Back agreed (True) or not, item 9's answer, ODI sections
    0-5 (None: unanswered; odi=None: the section left out), SILS and Chew's item."""
    hl: list[dict[str, Any]] = [{"linkId": "hl.sils.1", "answer": [coding(sils)]}]
    if chew:
        hl.append({"linkId": "hl.chew.1", "answer": [coding(chew)]})
    sb = [{"linkId": f"startback.{i}", "answer": [coding("agree" if a else "disagree")]}
          for i, a in enumerate(startback, 1)]
    sb.append({"linkId": "startback.9", "answer": [coding(bothersome)]})
    items = [{"linkId": "hl", "item": hl}, {"linkId": "startback", "item": sb}]
    if odi is not None:
        items.append({"linkId": "odi", "item": [{"linkId": f"odi.{i}", "answer": [coding(f"level-{v}")]}
                                                for i, v in enumerate(odi, 1) if v is not None]})
    return {"resourceType": "QuestionnaireResponse", "id": rid, "questionnaire": questionnaire, "status": status,
            "subject": {"identifier": dict(CPR)}, "authored": "2026-11-03T10:15:00+01:00", "item": items}


def assessment(need: str = "need-moderate", red_flags: str = "no", multimorbidity: str = "no",
               resources: str = "resources-good", reason: str | None = None, rid: str = "assessment-1",
               cpr: str = CPR["value"]) -> dict[str, Any]:
    items = [{"linkId": "gp.need", "answer": [coding(need)]},
             {"linkId": "gp.red-flags", "answer": [coding(red_flags)]},
             {"linkId": "gp.multimorbidity", "answer": [coding(multimorbidity)]},
             {"linkId": "gp.social-resources", "answer": [coding(resources)]}]
    if reason:
        items.append({"linkId": "gp.reason", "answer": [{"valueString": reason}]})
    return {"resourceType": "QuestionnaireResponse", "id": rid, "questionnaire": ASSESSMENT_Q, "status": "completed",
            "subject": {"identifier": {"system": CPR["system"], "value": cpr}},
            "authored": "2026-11-05T09:00:00+01:00", "item": items}


def find_item(response: dict[str, Any], link: str) -> dict[str, Any]:
    stack = list(response.get("item") or [])
    while stack:
        item = stack.pop()
        if item.get("linkId") == link:
            return item
        stack.extend(item.get("item") or [])
    raise KeyError(link)
