"""Replacing a shipped Questionnaire's paraphrased texts with an instrument's licensed wording.

The clinic holds the licence and the file; kroniker ships only the structure and the scoring. The file is JSON:

    {"questionnaire": "https://…/Questionnaire/lbp-patient|0.1.0",
     "licence": "STarT Back © Keele University, licensed to …",
     "items": {"startback.1": {"text": "…", "options": {"agree": "…", "disagree": "…"}}, …}}

The result is the same Questionnaire (url, version, linkIds, codes, weights, expressions unchanged) with those
texts replaced, each replaced item marked `licensed`, and the licence in `copyright`. A file that names an item
or an option the Questionnaire does not have is refused as a whole: nothing is half-replaced.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kroniker.clinical.content import Content
from kroniker.clinical.responses import value_of

WORDING = "https://kroniker.example/fhir/StructureDefinition/wording-status"


class LicensedError(Exception):
    """The licensed file cannot be applied; `key` and `params` are a message in the clinical catalogue."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


@dataclass
class Loaded:
    questionnaire: dict[str, Any]
    replaced: int


def load_licensed(data: Any, content: Content) -> Loaded:
    if not isinstance(data, dict) or not isinstance(data.get("questionnaire"), str) or \
            not isinstance(data.get("items"), dict) or not isinstance(data.get("licence"), str):
        raise LicensedError("licensed-shape")
    found = content.find(data["questionnaire"])
    if found is None or found.resource.get("resourceType") != "Questionnaire":
        raise LicensedError("licensed-no-questionnaire", questionnaire=data["questionnaire"])
    q = copy.deepcopy(found.resource)
    items = {i["linkId"]: i for i in _items(q.get("item"))}
    replaced = 0
    for link, texts in data["items"].items():
        item = items.get(link)
        if item is None or not isinstance(texts, dict):
            raise LicensedError("licensed-unknown-item", linkId=link)
        if isinstance(texts.get("text"), str):
            item["text"] = texts["text"]
            replaced += 1
        options = {(value_of(o) or ("", {}))[1].get("code"): o for o in item.get("answerOption") or []
                   if isinstance((value_of(o) or ("", None))[1], dict)}
        for code, text in (texts.get("options") or {}).items():
            option = options.get(code)
            if option is None or not isinstance(text, str):
                raise LicensedError("licensed-unknown-option", linkId=link, code=code)
            option["valueCoding"]["display"] = text
            replaced += 1
        item["extension"] = [e for e in item.get("extension") or [] if e.get("url") != WORDING] + \
            [{"url": WORDING, "valueCode": "licensed"}]
    q["copyright"] = data["licence"]
    return Loaded(q, replaced)


def _items(items: Any) -> Iterator[dict[str, Any]]:
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("linkId"), str):
            yield item
            yield from _items(item.get("item"))
