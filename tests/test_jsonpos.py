"""Line:column of findings: `PositionIndex.locate` and `Report.positioned()`.

Expected positions are computed here, independently: by finding a unique marker in the text, or by a small
recursive reader of our own. Lines and columns are 1-based; a column counts characters (code points), as
Python's JSON decoder does for the json-syntax findings, so both kinds of positions agree.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kroniker.validators.findings import Report, Severity
from kroniker.validators.jsonpos import PositionIndex
from kroniker.validators.render import operation_outcome
from kroniker.validators.validate import Validator
from tests.builders import shared_note

JsonPath = tuple[str | int, ...]


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def at(text: str, marker: str, nth: int = 0) -> tuple[int, int]:
    """The position of the nth occurrence of a marker (which the test has made unique or counted)."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(marker, offset + 1)
    return line_col(text, offset)


def test_line_col_helper() -> None:
    assert line_col("ab\ncd", 0) == (1, 1)
    assert line_col("ab\ncd", 4) == (2, 2)


# -- members, items, nesting ---------------------------------------------------------------------------------

def test_object_members_are_located_at_their_key() -> None:
    text = '{"resourceType": "Patient", "gender": "female", "name": [{"family": "Lænderyg"}]}'
    idx = PositionIndex(text)
    assert idx.locate(("gender",)) == at(text, '"gender"')
    assert idx.locate(("name",)) == at(text, '"name"')
    assert idx.locate(("name", 0, "family")) == at(text, '"family"')
    assert idx.locate(()) == (1, 1)


def test_array_items_are_located_at_their_first_character() -> None:
    text = '{"a": [10, 20, "tredive", {"k": 1}, [5, 6], null, true, -4.5e3]}'
    idx = PositionIndex(text)
    assert idx.locate(("a", 0)) == at(text, "10")
    assert idx.locate(("a", 1)) == at(text, "20")
    assert idx.locate(("a", 2)) == at(text, '"tredive"')
    assert idx.locate(("a", 3)) == at(text, '{"k"')
    assert idx.locate(("a", 3, "k")) == at(text, '"k"')
    assert idx.locate(("a", 4)) == at(text, "[5")
    assert idx.locate(("a", 4, 1)) == at(text, "6]")
    assert idx.locate(("a", 5)) == at(text, "null")
    assert idx.locate(("a", 6)) == at(text, "true")
    assert idx.locate(("a", 7)) == at(text, "-4.5e3")


def test_nested_arrays_and_objects_pretty_printed() -> None:
    doc = {"entry": [{"resource": {"id": "A"}},
                     {"resource": {"id": "B", "code": [[1, 2], [3, [4, "fire"]]]}}]}
    for indent in (None, 0, 2, 4, "\t"):
        text = json.dumps(doc, indent=indent)
        idx = PositionIndex(text)
        assert idx.locate(("entry", 0, "resource", "id")) == at(text, '"id"', 0), indent
        assert idx.locate(("entry", 1, "resource", "id")) == at(text, '"id"', 1), indent
        assert idx.locate(("entry", 1, "resource", "code", 1, 1, 1)) == at(text, '"fire"'), indent
        assert idx.locate(("entry", 1, "resource", "code", 0, 1)) == at(text, "2"), indent
        # Braces in order: the root, entry 0, its resource, entry 1.
        assert idx.locate(("entry", 1)) == at(text, "{", 3), indent


def test_whitespace_between_tokens() -> None:
    text = '\n\n  {  "a"  :\n [ 1 ,\n\t2 ] ,\r\n "b" : { "c" :[ ] , "d":"x" } }  \n'
    idx = PositionIndex(text)
    assert idx.locate(()) == (3, 3)
    assert idx.locate(("a",)) == at(text, '"a"')
    assert idx.locate(("a", 1)) == at(text, "2")
    assert idx.locate(("b",)) == at(text, '"b"')
    assert idx.locate(("b", "d")) == at(text, '"d"')
    assert idx.locate(("b", "c")) == at(text, '"c"')


def test_lines_end_with_crlf() -> None:
    text = json.dumps({"a": 1, "b": {"c": [1, 2]}}, indent=2).replace("\n", "\r\n")
    idx = PositionIndex(text)
    assert idx.locate(("b", "c", 1)) == at(text, "2")
    assert idx.locate(("b", "c", 1)) == (6, 7)  # counted by hand: line 6 is `      2`


def test_empty_containers() -> None:
    text = '{"a": {}, "b": [], "c": [{}, []], "d": 4}'
    idx = PositionIndex(text)
    assert idx.locate(("d",)) == at(text, '"d"')
    assert idx.locate(("c", 1)) == at(text, "[]", 1)
    assert idx.locate(("c", 0)) == at(text, "{}", 1)
    assert idx.locate(("a", "x")) == at(text, '"a"')  # missing: the empty object's key
    assert idx.locate(("b", 0)) == at(text, '"b"')


# -- strings ------------------------------------------------------------------------------------------------

def test_escaped_strings() -> None:
    text = r'{"x": "a,{b}[c]\"d: \\", "q\"uote": 1, "back\\slash": {"\u00e6bler": [true]}, "y": "\"}"}'
    idx = PositionIndex(text)
    assert idx.locate(("q\"uote",)) == at(text, r'"q\"uote"')
    assert idx.locate(("back\\slash",)) == at(text, r'"back\\slash"')
    assert idx.locate(("back\\slash", "æbler")) == at(text, r'"\u00e6bler"')
    assert idx.locate(("back\\slash", "æbler", 0)) == at(text, "true")
    assert idx.locate(("y",)) == at(text, '"y"')


def test_unicode_before_the_target_counts_as_characters() -> None:
    text = '{"navn": "Søren Æbelø 🩺🩺",\n "køn": "male", "fødsel": "1962"}'
    idx = PositionIndex(text)
    assert idx.locate(("køn",)) == (2, 2)
    assert idx.locate(("fødsel",)) == at(text, '"fødsel"')
    assert at(text, '"fødsel"') == (2, 17)
    one_line = '{"navn": "🩺🩺🩺", "x": 1}'
    assert PositionIndex(one_line).locate(("x",)) == (1, 1 + one_line.index('"x"'))
    assert one_line.index('"x"') == 16  # 🩺 is one character, not two UTF-16 units or four bytes


def test_columns_agree_with_json_syntax_positions() -> None:
    """The same unit as the json-syntax finding's line:column (Python's decoder counts characters)."""
    good = '{"navn": "Æø 🩺",\n  "x": 1}'
    bad = good.replace("1}", "}")
    with pytest.raises(json.JSONDecodeError) as exc:
        json.loads(bad)
    # The decoder stops where the value of x should be; x's key is 5 characters before it on that line.
    assert PositionIndex(good).locate(("x",)) == (exc.value.lineno, exc.value.colno - 5)


def test_duplicate_keys_locate_the_member_json_keeps() -> None:
    text = '{"a": 1, "b": 2, "a": 3}'
    assert json.loads(text)["a"] == 3
    assert PositionIndex(text).locate(("a",)) == at(text, '"a"', 1)


# -- missing paths ------------------------------------------------------------------------------------------

def test_missing_path_falls_back_to_the_nearest_existing_ancestor() -> None:
    text = json.dumps({"entry": [{"resource": {"resourceType": "Composition", "section": [{"entry": []}]}}]},
                      indent=2)
    idx = PositionIndex(text)
    assert idx.locate(("entry", 0, "resource", "title")) == at(text, '"resource"')
    # Braces in order: the root, entry 0, its resource, the section.
    assert idx.locate(("entry", 0, "resource", "section", 0, "title", 0)) == at(text, "{", 3)
    assert idx.locate(("entry", 5, "resource")) == at(text, '"entry"')
    assert idx.locate(("entry", 0, "resource", "resourceType", "x")) == at(text, '"resourceType"')
    assert idx.locate(("nothing", "here")) == (1, 1)


def test_root_is_its_first_character() -> None:
    text = '  \n\t {"a": 1}'
    assert PositionIndex(text).locate(()) == (2, 3)
    assert PositionIndex(text).locate(("missing",)) == (2, 3)


# -- against an independent reader ---------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|NaN|-?Infinity")
_WS = " \t\n\r"


def reference_positions(text: str) -> dict[JsonPath, int]:
    """Offsets of every value (members at their key), by plain recursive descent."""
    out: dict[JsonPath, int] = {}
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in _WS:
            i += 1
        return i

    def value(i: int, path: JsonPath) -> int:
        i = skip(i)
        if text[i] == "{":
            i = skip(i + 1)
            while text[i] != "}":
                key_at = i
                key, i = decoder.raw_decode(text, i)
                out[(*path, key)] = key_at
                i = skip(i)
                assert text[i] == ":"
                i = skip(value(i + 1, (*path, key)))
                if text[i] == ",":
                    i = skip(i + 1)
            return i + 1
        if text[i] == "[":
            i = skip(i + 1)
            n = 0
            while text[i] != "]":
                out[(*path, n)] = i
                i = skip(value(i, (*path, n)))
                n += 1
                if text[i] == ",":
                    i = skip(i + 1)
            return i + 1
        if text[i] == '"':
            return decoder.raw_decode(text, i)[1]
        m = _NUMBER.match(text, i)
        assert m, text[i:i + 20]
        return m.end()

    out[()] = skip(0)
    value(0, ())
    return out


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(doc=json_docs, indent=st.sampled_from([None, 0, 1, 2, "\t", " \n "]), ascii_only=st.booleans(),
       separators=st.sampled_from([None, (",", ":"), (" , ", " : "), (",\n", ":\n\t")]))
def test_every_path_agrees_with_an_independent_reader(doc: Any, indent: int | str | None, ascii_only: bool,
                                                      separators: tuple[str, str] | None) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only, separators=separators)
    expected = reference_positions(text)
    idx = PositionIndex(text)
    for path, offset in expected.items():
        assert idx.locate(path) == line_col(text, offset), (path, text)


# -- Report.positioned() on a real validation -------------------------------------------------------------

def _validate(validator: Validator, doc: dict[str, Any], indent: int | None = 2) -> tuple[Report, str]:
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    return validator.validate(text.encode("utf-8")), text


def test_missing_title_is_located_at_the_composition(validator: Validator) -> None:
    doc = shared_note()
    assert doc["entry"][0]["resource"]["resourceType"] == "Composition"
    del doc["entry"][0]["resource"]["title"]
    report, text = _validate(validator, doc)
    title = [f for f in report.positioned() if f.path == ("entry", 0, "resource", "title")]
    assert {f.code for f in title} >= {"card-min"}
    # The Composition is entry 0's "resource" member: the first "resource" key in the text.
    expected = at(text, '"resource"')
    assert expected[0] > 1
    for f in title:
        assert (f.line, f.column) == expected, f
        assert f.as_dict()["line"] == expected[0] and f.as_dict()["column"] == expected[1]
    issues = [i for i in operation_outcome(report)["issue"]
              if i["expression"] == ["Bundle.entry[0].resource.title"]]
    assert issues and all(i["location"] == [f"{expected[0]}:{expected[1]}"] for i in issues)


def test_positions_of_present_elements(validator: Validator) -> None:
    doc = shared_note()
    doc["entry"][0]["resource"]["title"] = "Forkert titel MARKØR-1"
    doc["entry"][1]["resource"]["performer"][1]["reference"] = "PractitionerRole/MARKØR-2"
    doc["entry"][2]["resource"]["birthDate"] = "1962-13-45"
    report, text = _validate(validator, doc)
    by_path = {f.path: f for f in report.positioned()}
    cases = {
        ("entry", 0, "resource", "title"): '"title": "Forkert titel MARKØR-1"',
        ("entry", 1, "resource", "performer", 1, "reference"): '"reference": "PractitionerRole/MARKØR-2"',
        ("entry", 2, "resource", "birthDate"): '"birthDate": "1962-13-45"',
    }
    for path, marker in cases.items():
        assert path in by_path, (path, sorted(by_path, key=str))
        f = by_path[path]
        assert f.severity >= Severity.ERROR
        assert (f.line, f.column) == at(text, marker), f


def test_array_item_findings_point_at_the_item(validator: Validator) -> None:
    doc = shared_note()
    doc["entry"][0]["resource"]["author"].append({"reference": "Organization/finnes-ikke"})
    report, text = _validate(validator, doc)
    hits = [f for f in report.positioned() if f.path[:5] == ("entry", 0, "resource", "author", 2)]
    assert hits, [f.as_dict() for f in report.positioned()]
    authors = text.index('"author": [')
    item = authors
    for _ in range(3):  # the third author's opening brace (author items hold no nested objects)
        item = text.index("{", item + 1)
    member = text.index('"reference": "Organization/finnes-ikke"')
    assert authors < item < member
    for f in hits:
        assert (f.line, f.column) in (line_col(text, item), line_col(text, member)), f


def test_positions_on_one_line_and_with_crlf(validator: Validator) -> None:
    doc = shared_note()
    doc["entry"][0]["resource"]["title"] = "MARKØR"
    compact, text = _validate(validator, doc, indent=None)
    (f,) = [f for f in compact.positioned() if f.path == ("entry", 0, "resource", "title")]
    assert (f.line, f.column) == (1, text.index('"title": "MARKØR"') + 1)

    crlf = json.dumps(doc, indent=2, ensure_ascii=False).replace("\n", "\r\n")
    report = validator.validate(crlf.encode("utf-8"))
    (g,) = [g for g in report.positioned() if g.path == ("entry", 0, "resource", "title")]
    assert (g.line, g.column) == at(crlf, '"title": "MARKØR"')


def test_findings_without_a_path_keep_no_or_their_own_position(validator: Validator) -> None:
    report = validator.validate(b'{\n  "resourceType": "Bundle",\n  "type": ]\n}')
    (f,) = report.positioned()
    assert f.code == "json-syntax"
    assert (f.line, f.column) == (3, 11)  # where the value of "type" should start

    doc = shared_note()
    doc["entry"][0]["resource"]["title"] = "MARKØR"
    report, _ = _validate(validator, doc)
    for g in report.positioned():
        if not g.path:
            assert g.line is None and g.column is None, g


def test_positions_are_filled_only_when_asked(validator: Validator) -> None:
    doc = shared_note()
    doc["entry"][0]["resource"]["title"] = "MARKØR"
    report, text = _validate(validator, doc)
    assert all(f.line is None for f in report.findings if f.path)
    first = [(f.code, f.line, f.column) for f in report.positioned()]
    assert first == [(f.code, f.line, f.column) for f in report.positioned()]
    assert report.errors() and all(f.line is not None for f in report.errors())
    title = [f for f in report.errors() if f.path == ("entry", 0, "resource", "title")]
    assert title and (title[0].line, title[0].column) == at(text, '"title": "MARKØR"')
