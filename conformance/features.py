"""The Danish feature files as a test suite: parsed with the Cucumber Gherkin parser into scenarios (one per
example row), each with the requirements it covers (`@krav:<id>` tags)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from gherkin.parser import Parser
from gherkin.pickles.compiler import Compiler
from gherkin.token_scanner import TokenScanner

REQUIREMENT_TAG = "@krav:"
DOCUMENT_TAG = "@dokument"
# The folders whose scenarios a sharing system is tested with; the documents suite is the @dokument scenarios.
SERVER_FOLDERS = ("lps", "kliniker", "borger")
# The patient's questionnaire is answered through the care package's Python API (tests/test_features_clinical.py)
# until the server takes questionnaire responses (issue 12): not a sharing scenario yet.
NOT_SERVER = frozenset({"borger/spoergeskema.feature"})
KINDS = {"Context": "given", "Action": "when", "Outcome": "then"}


@dataclass(frozen=True)
class Step:
    kind: str  # given | when | then
    keyword: str  # as written (Givet, Og, Men, …)
    text: str


@dataclass(frozen=True)
class Scenario:
    id: str  # folder/file.feature:line (the line of the example row for an outline)
    uri: str
    feature: str
    name: str
    steps: tuple[Step, ...]
    requirements: tuple[str, ...]
    documents: bool  # run once for each of a vendor's documents (the documents suite)


def feature_files() -> list[tuple[str, Traversable]]:
    root = resources.files("kroniker.features")
    out: list[tuple[str, Traversable]] = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        if folder.is_dir():
            out += [(f"{folder.name}/{f.name}", f) for f in sorted(folder.iterdir(), key=lambda p: p.name)
                    if f.name.endswith(".feature")]
    return out


def parse(uri: str, text: str) -> list[Scenario]:
    doc: dict[str, Any] = dict(Parser().parse(TokenScanner(text)))
    doc["uri"] = uri
    feature = doc["feature"]
    keywords = _keywords(feature)
    out = []
    for pickle in Compiler().compile(doc):  # type: ignore[arg-type]
        tags = [t["name"] for t in pickle["tags"]]
        steps = tuple(Step(KINDS.get(s.get("type", ""), "given"), keywords.get(s["astNodeIds"][0], ""), s["text"])
                      for s in pickle["steps"])
        line = pickle["location"]["line"]
        out.append(Scenario(f"{uri}:{line}", uri, feature["name"], pickle["name"], steps,
                            tuple(t.removeprefix(REQUIREMENT_TAG) for t in tags if t.startswith(REQUIREMENT_TAG)),
                            DOCUMENT_TAG in tags))
    return out


def _keywords(feature: dict[str, Any]) -> dict[str, str]:
    """Step id → the keyword as written, from the parsed feature (pickles keep only the step's kind)."""
    out: dict[str, str] = {}
    for child in feature.get("children", []):
        for part in (child.get("background"), child.get("scenario")):
            for step in (part or {}).get("steps", []):
                out[step["id"]] = step["keyword"].strip()
    return out


def load_all() -> list[Scenario]:
    return [s for uri, f in feature_files() for s in parse(uri, f.read_text(encoding="utf-8"))]


def server_suite(scenarios: list[Scenario] | None = None) -> list[Scenario]:
    return [s for s in (scenarios or load_all()) if s.uri.split("/")[0] in SERVER_FOLDERS and s.uri not in NOT_SERVER]


def documents_suite(scenarios: list[Scenario] | None = None) -> list[Scenario]:
    return [s for s in (scenarios or load_all()) if s.documents]


def digest() -> dict[str, str]:
    """sha256 of every feature file, for the session record."""
    return {uri: hashlib.sha256(f.read_bytes()).hexdigest() for uri, f in feature_files()}
