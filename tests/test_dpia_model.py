"""The register document: schema, canonical hash, the clinics' keyed merge patch, and the diff as JSON pointers."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kroniker.dpia import delta, model
from kroniker.dpia.diff import diff, removed_items
from kroniker.dpia.exchange import read
from kroniker.dpia.model import RegisterError
from tests.dpia_support import get, resolve, template


def test_the_template_and_its_schema_are_valid() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(model.schema())
    assert model.schema_problems(template()) == []


def test_every_field_of_the_schema_is_documented() -> None:
    missing: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if "description" not in prop and "$ref" not in prop:
                    missing.append(f"{path}/{name}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(model.schema(), "")
    assert missing == []


@pytest.mark.parametrize(("change", "where"), [
    (lambda d: d["dpia"]["risks"][0]["inherent"].update(severity=5), "/dpia/risks/0/inherent/severity"),
    (lambda d: d["activities"][0]["roles"][0].update(role="owner"), "/activities/0/roles/0/role"),
    (lambda d: d["dpia"]["review"].update(next="1. juni 2027"), "/dpia/review/next"),
    (lambda d: d["activities"][0].update(purpose="typo for purposes"), "/activities/0"),
    (lambda d: d["organisations"][0].update(name=None), "/organisations/0/name"),
])
def test_schema_violations_name_their_place(change: Any, where: str) -> None:
    doc = template()
    change(doc)
    problems = model.schema_problems(doc)
    assert where in [p.pointer for p in problems], problems


def test_the_hash_is_sha256_of_the_canonical_form_and_ignores_key_order() -> None:
    doc = template()
    shuffled = json.loads(json.dumps(doc, sort_keys=False), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert model.register_hash(doc) == model.register_hash(shuffled)
    changed = copy.deepcopy(doc)
    changed["title"] += "."
    assert model.register_hash(changed) != model.register_hash(doc)
    assert model.register_hash(doc).startswith("sha256:") and len(model.register_hash(doc)) == 71


@pytest.mark.parametrize(("data", "says"), [
    (b"{\"id\": ", "not valid JSON"),
    (b"\xff\xfe", "the file is UTF-16"),
    (b'{"id": "\xff"}', "not valid UTF-8 at byte 8 (line 1, column 9)"),
    (b"[]", "is not of type 'object'"),
    (b'{"schema_version": 1, "id": "x", "kind": "clinic", "title": "t"}', "made with kroniker dpia adopt"),
])
def test_unreadable_input_is_a_register_error_saying_why(data: bytes, says: str) -> None:
    with pytest.raises(RegisterError) as exc:
        read(data, "in.json")
    assert says in str(exc.value) and "in.json" in str(exc.value)


# -- the keyed merge patch ---------------------------------------------------------------------------------

def test_a_clinic_s_delta_addresses_list_items_by_id() -> None:
    base = template()
    target = copy.deepcopy(base)
    get(target, resolve(target, "/organisations[clinic]"))["name"] = "Lægerne i Kronikergården"
    target["organisations"].append({"id": "it-support", "name": "Klinik-IT ApS", "kind": "vendor"})
    d = delta.make(base, target)
    assert d == {"organisations": {"clinic": {"name": "Lægerne i Kronikergården"},
                                   "it-support": {"id": "it-support", "name": "Klinik-IT ApS", "kind": "vendor"}}}
    assert delta.apply(base, d) == target


def test_a_template_addition_reaches_a_clinic_that_added_to_the_same_list() -> None:
    base = template()
    clinic = copy.deepcopy(base)
    clinic["organisations"].append({"id": "it-support", "name": "Klinik-IT ApS", "kind": "vendor"})
    d = delta.make(base, clinic)
    newer = copy.deepcopy(base)
    newer["organisations"].append({"id": "cloud", "name": "Sky-drift A/S", "kind": "vendor"})
    ids = [o["id"] for o in delta.apply(newer, d)["organisations"]]
    assert ids[-2:] == ["cloud", "it-support"] and ids[:-2] == [o["id"] for o in base["organisations"]]


def test_null_removes_as_in_rfc_7386() -> None:
    assert delta.apply({"a": 1, "b": {"c": 2}}, {"b": {"c": None}}) == {"a": 1, "b": {}}
    assert delta.apply([{"id": "x"}, {"id": "y"}], {"x": None}) == [{"id": "y"}]


def test_a_delta_that_cannot_be_said_is_refused() -> None:
    with pytest.raises(ValueError, match="merge patch"):
        delta.make({"a": 1}, {"a": None})


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
                    max_leaves=12)
NO_NULL = st.recursive(st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                                   max_size=3), max_leaves=12)
ITEM = st.fixed_dictionaries({"id": st.sampled_from(list("abcde")), "v": NO_NULL})
KEYED = st.lists(ITEM, max_size=5, unique_by=lambda item: item["id"])
REGISTERISH = st.fixed_dictionaries({"items": KEYED, "meta": st.dictionaries(st.text(max_size=2), NO_NULL,
                                                                             max_size=3)})


@settings(max_examples=300, deadline=None)
@given(REGISTERISH, REGISTERISH)
def test_applying_the_delta_gives_the_target(base: dict[str, Any], target: dict[str, Any]) -> None:
    try:
        d = delta.make(base, target)
    except ValueError:
        # The one thing a keyed merge patch cannot say (and the schema rules out): an object where a list was.
        assert _object_over_list(base, target)
        return
    assert delta.same(delta.apply(base, d), target)
    # The delta survives a trip through sorted JSON (an export) and still gives the same register.
    assert delta.apply(base, json.loads(json.dumps(d, sort_keys=True))) == delta.apply(base, d)


def _object_over_list(base: Any, target: Any) -> bool:
    if isinstance(base, list) and isinstance(target, dict):
        return True
    if isinstance(base, dict) and isinstance(target, dict):
        return any(_object_over_list(base[k], target[k]) for k in base.keys() & target.keys())
    if delta.keyed(base) and delta.keyed(target):
        old = {item["id"]: item for item in base}
        return any(_object_over_list(old[item["id"]], item) for item in target if item["id"] in old)
    return False


@settings(max_examples=200, deadline=None)
@given(REGISTERISH, REGISTERISH)
def test_the_diff_names_every_change(old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = diff(old, new)
    assert (changes == []) == delta.same(old, new) or any(c.op == "reorder" for c in changes)


@settings(max_examples=200, deadline=None)
@given(JSON, JSON)
def test_apply_never_changes_its_inputs_and_sharing_gives_the_same(base: Any, patch: Any) -> None:
    before = copy.deepcopy((base, patch))
    copied = delta.apply(base, patch)
    assert delta.apply(base, patch, share=True) == copied
    assert (base, patch) == before


# -- the diff ----------------------------------------------------------------------------------------------

def test_a_diff_names_changes_by_json_pointer_and_by_ids() -> None:
    old = template()
    new = copy.deepcopy(old)
    where = resolve(new, "/activities[diagnosis-card]/record/purposes")
    get(new, where).append("Kvalitetsudvikling")
    new["organisations"].insert(0, {"id": "it-support", "name": "Klinik-IT ApS", "kind": "vendor"})
    get(new, resolve(new, "/dpia/review"))["next"] = "2027-03-01"
    changes = {(c.op, c.path): c for c in diff(old, new)}
    purposes = model.pointer(where)
    assert ("add", f"{purposes}/1") in changes and changes[("add", f"{purposes}/1")].new == "Kvalitetsudvikling"
    assert changes[("add", f"{purposes}/1")].where == "activities[diagnosis-card]/record/purposes/1"
    assert ("add", "/organisations/0") in changes, "an insertion is one addition, not every item changed"
    assert changes[("replace", "/dpia/review/next")].old == "2027-06-01"
    assert len(changes) == 3, "an insertion moves no other item: no reorder"


def test_removed_items_are_the_ones_with_ids() -> None:
    old = template()
    new = copy.deepcopy(old)
    new["organisations"] = [o for o in new["organisations"] if o["id"] != "webpatient"]
    get(new, resolve(new, "/activities[questionnaires]/record"))["purposes"].pop()
    assert [c.where for c in removed_items(old, new)] == ["organisations[webpatient]"]
