"""The register's store on SQLite and PostgreSQL: immutable revisions with their hash, nothing deleted, clinics as
deltas that follow the template, sign-offs bound to a revision, export → import → export byte for byte."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from kroniker.dpia import exchange, model
from kroniker.dpia.store import Store, StoreError
from tests.dpia_support import CLINIC_NAME, SOR, TODAY, clinic_changes, codes, get, resolve, template


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store.open(database_url)
    yield s
    s.close()


def sha256(document: Any) -> str:
    # Written out here rather than taken from the model: the hash a reviewer can recompute by hand.
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_it_support(document: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    doc["organisations"].append({"id": "it-support", "name": "Klinik-IT ApS", "kind": "vendor",
                                 "contact": {"email": "it@klinik-it.example"}})
    return doc


def test_every_change_is_a_new_revision_with_author_time_reason_and_hash(store: Store) -> None:
    first = store.save(template(), author="DPO Hansen", reason="første udgave")
    assert first is not None and first.number == 1 and first.hash == sha256(template())
    assert store.save(template(), author="DPO Hansen", reason="igen") is None, "no change, no revision"
    second = store.save(with_it_support(template()), author="DPO Jensen", reason="ny leverandør")
    assert second is not None and second.number == 2 and second.hash == sha256(with_it_support(template()))
    history = store.revisions("lbp")
    assert [(r.number, r.author, r.reason) for r in history] == [(1, "DPO Hansen", "første udgave"),
                                                                  (2, "DPO Jensen", "ny leverandør")]
    assert history[0].time <= history[1].time
    assert history[0].content == template(), "the first revision is unchanged by the second"
    assert store.revision("lbp", first.hash[7:19]).number == 1  # by a hash prefix
    assert store.revision("lbp", "r2").number == 2


def test_nothing_is_deleted_only_retired(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    doc = template()
    doc["organisations"] = [o for o in doc["organisations"] if o["id"] != "webpatient"]
    with pytest.raises(StoreError) as refused:
        store.save(doc, author="dpo", reason="fjern WebPatient")
    assert refused.value.key == "dpia-item-removed" and "organisations[webpatient]" in refused.value.message("en")
    assert [r.number for r in store.revisions("lbp")] == [1], "nothing was written"
    doc = template()
    get(doc, resolve(doc, "/organisations[webpatient]"))["status"] = "retired"
    assert store.save(doc, author="dpo", reason="WebPatient udgår") is not None


def test_a_retired_register_keeps_its_history_and_takes_no_changes(store: Store) -> None:
    store.save(with_it_support(template()) | {"id": "old", "kind": "register"}, author="dpo", reason="init")
    store.retire("old", by="dpo", reason="erstattet")
    assert "old" not in [i.id for i in store.registers()]
    assert "old" in [i.id for i in store.registers(include_retired=True)]
    assert [r.number for r in store.revisions("old")] == [1]
    with pytest.raises(StoreError, match="dpia-retired"):
        store.save(template() | {"id": "old", "kind": "register"}, author="dpo", reason="igen")


def test_a_clinic_holds_only_its_deltas_and_reads_as_the_template_with_them(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    rev = store.adopt("lbp", SOR, clinic_changes(), author="klinik", reason="tilslutning")
    assert set(rev.content) <= {"id", "kind", "title", "organisations", "agreements"}
    assert len(model.canonical(rev.content)) * 20 < len(model.canonical(template())), "a delta is small"
    eff = store.effective(f"clinic-{SOR}")
    orgs = {o["id"]: o for o in eff.document["organisations"]}
    assert orgs["clinic"]["name"] == CLINIC_NAME and "placeholder" not in orgs["clinic"]
    assert eff.document["activities"] == template()["activities"]
    assert eff.hash == sha256(eff.document)
    assert not [f for f in store.check(f"clinic-{SOR}", TODAY)[1] if f.severity >= 2], "an adopted clinic passes"
    with pytest.raises(StoreError, match="dpia-already-adopted"):
        store.adopt("lbp", SOR, {}, author="klinik", reason="igen")
    with pytest.raises(StoreError, match="dpia-bad-sor"):
        store.adopt("lbp", "12a; drop", {}, author="klinik", reason="x")


def test_a_template_change_reaches_every_adopting_clinic(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    sors = ["100000000001", "100000000002", "100000000003"]
    for sor in sors:
        store.adopt("lbp", sor, clinic_changes(f"Klinik {sor}", sor), author="klinik", reason="tilslutning")
    store.adopt("lbp", "100000000004", clinic_changes("Lukket klinik", "100000000004"), author="k", reason="t")
    store.retire("clinic-100000000004", by="dpo", reason="lukket")
    store.save(with_it_support(template()), author="DPO Hansen", reason="ny IT-leverandør")
    for sor in sors:
        history = store.revisions(f"clinic-{sor}")
        assert [(r.number, r.template_number) for r in history] == [(1, 1), (2, 2)]
        assert "ny IT-leverandør" in history[-1].reason and history[-1].author == "DPO Hansen"
        assert history[-1].content == history[0].content, "the clinic's own deltas are carried over unchanged"
        eff = store.effective(f"clinic-{sor}")
        assert "it-support" in {o["id"] for o in eff.document["organisations"]}
        assert {o["id"]: o for o in eff.document["organisations"]}["clinic"]["name"] == f"Klinik {sor}"
    assert [r.number for r in store.revisions("clinic-100000000004")] == [1], "a retired clinic stays as it was"


def test_a_clinic_s_edit_never_undoes_a_template_change_it_had_not_seen(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    store.adopt("lbp", SOR, clinic_changes(), author="klinik", reason="tilslutning")
    read = exchange.export(store, f"clinic-{SOR}")  # the clinic reads its register …
    store.save(with_it_support(template()), author="dpo", reason="ny IT-leverandør")  # … the template changes …
    edited = copy.deepcopy(read["register"])  # … and the clinic saves its edit of what it read
    get(edited, resolve(edited, "/activities[journal-note-sharing]/record"))["recipients"].append("Kommunens træning")
    exchange.take_in(store, exchange.read(model.pretty(read | {"register": edited})), author="klinik",
                     reason="ny modtager")
    eff = store.effective(f"clinic-{SOR}")
    assert "it-support" in {o["id"] for o in eff.document["organisations"]}
    assert "Kommunens træning" in get(eff.document, resolve(eff.document, "/activities[journal-note-sharing]/record"))[
        "recipients"]
    assert eff.revision.template_number == 2


def test_a_sign_off_freezes_a_revision(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    store.adopt("lbp", SOR, clinic_changes(), author="klinik", reason="tilslutning")
    clinic = f"clinic-{SOR}"
    assert "DPIA-SIGNOFF-MISSING" in codes(store.check(clinic, TODAY)[1])
    signed = store.sign_off(clinic, role="controller", name="Dr. Jensen", decision="approve", expected=1)
    assert signed.revision == store.effective(clinic).hash and signed.revision_number == 1
    assert not codes(store.check(clinic, TODAY)[1]) & {"DPIA-SIGNOFF-MISSING", "DPIA-SIGNOFF-STALE"}
    edited = store.effective(clinic).document
    get(edited, resolve(edited, "/activities[journal-note-sharing]/record"))["recipients"].append("Kommunens træning")
    store.save_clinic(edited, author="klinik", reason="ny modtager")
    stale = [f for f in store.check(clinic, TODAY)[1] if f.code == "DPIA-SIGNOFF-STALE"]
    assert len(stale) == 1 and stale[0].severity == 2 and "Dr. Jensen" in stale[0].message("da")
    assert store.sign_offs(clinic)[0].revision == signed.revision, "the sign-off still names what it signed"
    store.sign_off(clinic, role="controller", name="Dr. Jensen", decision="approve")
    assert "DPIA-SIGNOFF-STALE" not in codes(store.check(clinic, TODAY)[1])


def test_a_template_change_makes_every_clinic_s_sign_off_stale_and_says_how_much_changed(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    store.sign_off("lbp", role="dpo", name="DPO Hansen", decision="approve")
    store.adopt("lbp", SOR, clinic_changes(), author="klinik", reason="tilslutning")
    store.sign_off(f"clinic-{SOR}", role="controller", name="Dr. Jensen", decision="approve")
    assert not codes(store.check(f"clinic-{SOR}", TODAY)[1])
    store.save(with_it_support(template()), author="dpo", reason="ny IT-leverandør")
    found = {f.code: f for f in store.check(f"clinic-{SOR}", TODAY)[1]}
    assert {"DPIA-SIGNOFF-STALE", "DPIA-TEMPLATE-CHANGED", "DPIA-35-2-DPO-ADVICE"} <= set(found)
    assert found["DPIA-TEMPLATE-CHANGED"].params == {"signed": 1, "current": 2, "changes": 1}


def test_a_sign_off_is_refused_when_the_register_moved_or_has_errors(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    store.save(with_it_support(template()), author="dpo", reason="ny")
    with pytest.raises(StoreError) as moved:
        store.sign_off("lbp", role="dpo", name="DPO", decision="approve", expected=1)
    assert moved.value.key == "dpia-signoff-moved"
    assert store.sign_offs("lbp") == [], "nothing signed"
    store.adopt("lbp", SOR, clinic_changes(signed=None), author="klinik", reason="uden aftaler")
    with pytest.raises(StoreError) as errors:
        store.sign_off(f"clinic-{SOR}", role="controller", name="Dr. Jensen", decision="approve", today=TODAY)
    assert errors.value.key == "dpia-signoff-errors" and "DPIA-28-9-WRITING" in errors.value.message("en")
    store.sign_off(f"clinic-{SOR}", role="controller", name="Dr. Jensen", decision="reject", today=TODAY)
    forced = store.sign_off(f"clinic-{SOR}", role="controller", name="Dr. Jensen", decision="approve",
                            despite_errors=True, today=TODAY)
    assert forced.despite_errors and store.sign_offs(f"clinic-{SOR}")[-1].despite_errors


def test_a_rejected_revision_is_an_error(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    store.sign_off("lbp", role="dpo", name="DPO", decision="reject", statement="risikovurderingen er for tynd")
    assert "DPIA-SIGNOFF-REJECTED" in codes(store.check("lbp", TODAY)[1])


def test_content_changed_behind_the_store_s_back_is_found(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    tampered = template()
    tampered["dpia"]["prior_consultation"]["decision"] = "consulted"
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE dpia_revisions SET content = :c WHERE register_id = 'lbp'"),
                     {"c": model.canonical(tampered).decode()})
    found = [f for f in store.check("lbp", TODAY)[1] if f.code == "DPIA-HASH-MISMATCH"]
    assert len(found) == 1 and found[0].severity == 2


def test_export_import_export_is_byte_for_byte(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    source = Store.open(database_url)
    target = Store.open(f"sqlite:///{tmp_path_factory.mktemp('other') / 'other.db'}")
    try:
        source.save(template(), author="DPO Hansen", reason="første udgave")
        source.sign_off("lbp", role="dpo", name="DPO Hansen", decision="approve", statement="Godkendt uden forbehold")
        source.adopt("lbp", SOR, clinic_changes(), author="Dr. Jensen", reason="tilslutning")
        source.sign_off(f"clinic-{SOR}", role="controller", name="Dr. Jensen", decision="approve-with-conditions",
                        statement="Forudsat at personalet instrueres inden 31. januar")
        for register in ("lbp", f"clinic-{SOR}"):  # the template first: the clinic's export names its revision
            first = exchange.export_text(source, register)
            done = exchange.take_in(target, exchange.read(first), author="someone else", reason="moved")
            assert done.new is not None and done.sign_offs == 1
            assert exchange.export_text(target, register) == first
            again = exchange.take_in(target, exchange.read(first), author="someone else", reason="again")
            assert again.new is None and again.sign_offs == 0
            assert exchange.export_text(target, register) == first
        assert target.revisions(f"clinic-{SOR}")[0].content == source.revisions(f"clinic-{SOR}")[0].content
    finally:
        source.close()
        target.close()


def test_an_export_carries_the_hash_of_its_revision_and_only_the_sign_offs_on_it(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    store.sign_off("lbp", role="dpo", name="DPO", decision="approve")
    store.save(with_it_support(template()), author="dpo", reason="ny")
    newest, oldest = exchange.export(store, "lbp"), exchange.export(store, "lbp", 1)
    assert newest["revision"]["hash"] == sha256(newest["register"]) and newest["sign_offs"] == []
    assert oldest["revision"]["hash"] == sha256(template())
    assert [s["revision"] for s in oldest["sign_offs"]] == [oldest["revision"]["hash"]]
    assert model.schema_problems(newest, "export") == []


def test_an_edited_export_becomes_a_new_revision_by_the_importer(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    exported = exchange.export(store, "lbp")
    exported["register"] = with_it_support(exported["register"])
    done = exchange.take_in(store, exchange.read(model.pretty(exported)), author="DPO Jensen", reason="fra git")
    assert done.new is not None and (done.new.number, done.new.author, done.new.reason) == (2, "DPO Jensen", "fra git")


def test_a_clinic_export_needs_its_template_revision(store: Store, tmp_path_factory: pytest.TempPathFactory) -> None:
    store.save(template(), author="dpo", reason="init")
    store.adopt("lbp", SOR, clinic_changes(), author="klinik", reason="tilslutning")
    empty = Store.open(f"sqlite:///{tmp_path_factory.mktemp('empty') / 'e.db'}")
    try:
        with pytest.raises(StoreError, match="dpia-template-revision-missing"):
            exchange.take_in(empty, exchange.read(exchange.export_text(store, f"clinic-{SOR}")), author="a", reason="r")
        assert empty.registers() == [], "nothing was written"
    finally:
        empty.close()


def test_check_many_reads_every_register_in_force(store: Store) -> None:
    store.save(template(), author="dpo", reason="init")
    for i in range(5):
        store.adopt("lbp", f"20000000000{i}", clinic_changes(f"Klinik {i}", f"20000000000{i}"), author="k", reason="t")
    bad = store.effective("clinic-200000000003").document
    get(bad, resolve(bad, "/agreements[dpa-lps]"))["status"] = "draft"
    store.save_clinic(bad, author="k", reason="aftalen er ikke underskrevet alligevel")
    results = {eff.info.id: codes(found) for eff, found in store.check_many(None, date(2026, 12, 1))}
    assert set(results) == {"lbp", *(f"clinic-20000000000{i}" for i in range(5))}
    assert [r for r, c in results.items() if "DPIA-28-9-WRITING" in c] == ["clinic-200000000003"]


def test_the_migration_creates_the_tables_the_store_describes(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kroniker.dpia.store import metadata

    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in differences if "dpia_" in repr(d)]
    assert [d for d in ours if d[0] != "remove_table"] == [], ours
