"""Message catalogues: one JSON file per language, keyed by finding code or message key."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("da", "en")


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    text = resources.files(__package__).joinpath(f"{lang}.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


_FORMATTER = string.Formatter()


def render(key: str, params: Mapping[str, Any], lang: str = "en", *, location: str | None = None) -> str:
    """The message for `key` in `lang`, with `params` filled in and the location in front."""
    cat = catalogue(lang)
    template = cat.get(key)
    if template is None and key.startswith("invariant:"):
        # An invariant without its own text: the profile's own (English) explanation, said to be that.
        template = cat.get("invariant-value" if params.get("found") is not None else "invariant")
        params = {"key": key.split(":", 1)[1], **params}
    if template is None:
        # A rule without its own text still says what was found where (never a KeyError).
        template = cat.get("_generic", "{code}: {found}")
    # A parameter written "@key" is itself a catalogue text (a reason that has words in every language).
    values = _Params({k: cat.get(v[1:], v) if isinstance(v, str) and v.startswith("@") else _show(v)
                      for k, v in params.items()})
    values.setdefault("code", key)
    text = _FORMATTER.vformat(template, (), values)
    text = f"{location}: {text}" if location else text
    # A lone surrogate from a JSON escape cannot be written as UTF-8; show it as its escape instead.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _show(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= 200 else text[:197] + "..."
    if isinstance(value, str) and len(value) > 200:
        return value[:197] + "..."
    return value


def text(key: str, lang: str = "en", **params: Any) -> str:
    """A plain catalogue text (CLI headings, summaries), not tied to a finding."""
    return render(key, params, lang)
