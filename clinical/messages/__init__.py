"""The care packages' message catalogue (Danish and English), beside the validators' one.

A key not here (an input finding such as json-syntax, read by the validators' reader) is the validators'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from kroniker.validators import messages as engine_messages
from kroniker.validators.findings import Finding


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in engine_messages.LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(engine_messages.LANGUAGES)}")
    return dict(json.loads(resources.files(__package__).joinpath(f"{lang}.json").read_text(encoding="utf-8")))


def render(key: str, params: Mapping[str, Any], lang: str = "en", *, location: str | None = None) -> str:
    cat = catalogue(lang)
    if key not in cat:
        return engine_messages.render(key, params, lang, location=location)
    # A parameter written "@key" is itself a text of this catalogue (a reason with words in every language).
    values = {k: cat.get(v[1:], v) if isinstance(v, str) and v.startswith("@") else v for k, v in params.items()}
    return _format(cat[key], values, location)


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _format(template: str, values: Mapping[str, Any], location: str | None) -> str:
    shown = _Params({k: _show(v) for k, v in values.items()})
    text = template.format_map(shown)
    text = f"{location}: {text}" if location else text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _show(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif isinstance(value, str):
        text = value
    else:
        return value
    return text if len(text) <= 200 else text[:197] + "..."


def message(finding: Finding, lang: str = "en") -> str:
    return render(finding.message_key or finding.code, finding.params, lang, location=finding.location)


def text(key: str, lang: str = "en", **params: Any) -> str:
    return render(key, params, lang)


def as_dict(finding: Finding, lang: str = "en") -> dict[str, Any]:
    d: dict[str, Any] = {"severity": finding.severity.label, "code": finding.code, "location": finding.location,
                         "message": message(finding, lang)}
    if finding.line is not None:
        d["line"], d["column"] = finding.line, finding.column
    return d
