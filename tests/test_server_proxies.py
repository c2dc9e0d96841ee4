"""Proxies and embargo on the reference server (issue 14, items 5 and 6).

What is expected comes from spec/sharing-and-clinical.md: parents' digital access to the health data of children
under 15 (§2.1, sundhedsloven § 39 a as L 44 added it), Digital Fuldmagt given by a citizen aged 15 or more (§2.2),
MinLog showing access "as parent, guardian or attorney" (§2.5), blocks as being about professionals (§2.4, §4
"blocks do not apply to the patient"), and a per-type embargo for the citizen view only, default none (§2.6). Ages
follow the CPR office's century rule (tests/proxy_support.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kroniker.reference_server import policy
from kroniker.reference_server.db import clinical_resources
from kroniker.reference_server.serve import AccessLog
from kroniker.reference_server.settings import Settings, parse_embargo
from kroniker.reference_server.tokens import Principal
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.proxy_support import aged, birthday_begins, born, proxy_rows, register, registered, today
from tests.server_support import (
    ADMIN,
    DPO,
    OTHER_CLINIC,
    Patient,
    Server,
    card,
    citizen,
    clinician,
    days_from_now,
    finding_codes,
    ids,
    is_outcome,
    note,
    source,
)

pytestmark = pytest.mark.network

NOTE_TYPE = "866144008"  # a Shared Note's type (SNOMED CT Encounter note, MedCom Shared Notes)


def child_record(server: Server, years: int = 8) -> tuple[Patient, dict[str, Any], dict[str, Any], Principal]:
    """A child with a note and a diagnosis card shared, and a hospital doctor with a referral."""
    child = aged(years, given="Alma", family="Barn")
    annual = server.shared(source(), note(child))
    dk = server.shared(source(), card(child))
    doctor = clinician(f"P{uuid.uuid4().hex[:8]}")
    server.relate(child, clinician_id=doctor.auth_id)
    return child, annual, dk, doctor


def parent() -> Patient:
    return aged(40, given="Mette", family="Mor")


# -- custody -------------------------------------------------------------------------------------------------

def test_a_parent_with_custody_reads_the_childs_documents_as_the_child_would(server: Server) -> None:
    child, annual, dk, _ = child_record(server)
    mother = parent()
    registered(server, "custody", mother, child)
    me = citizen(mother)
    assert ids(server.search(me, child).json()) == {annual["id"], dk["id"]}
    assert server.client.get(annual["content"][0]["attachment"]["url"], headers=server.auth(me)).status_code == 200
    for path in (f"/fhir/DocumentReference/{annual['id']}", f"/fhir/DocumentReference/{annual['id']}/_history",
                 f"/fhir/DocumentReference/{annual['id']}/_history/1"):
        assert server.get(path, me).status_code == 200, path
    # the parent's own documents are still the parent's own
    own = server.search(me, mother)
    assert own.status_code == 200 and own.json()["total"] == 0


def test_a_parent_reads_the_childs_questionnaire_responses_and_scores(server: Server) -> None:
    child, *_ = child_record(server)
    mother, stranger = parent(), aged(41)
    registered(server, "custody", mother, child)
    rid = str(uuid.uuid4())
    with server.engine.begin() as conn:
        conn.execute(sa.insert(clinical_resources).values(
            id=rid, resource_type="Observation", kind="score", patient_cpr=child.cpr, submitter="test",
            created=dt.datetime(2026, 11, 3), resource=json.dumps({"resourceType": "Observation", "id": rid})))
    search = {"params": {"patient.identifier": child.identifier}}
    assert [e["resource"]["id"] for e in server.get("/fhir/Observation", citizen(mother), **search).json()["entry"]] \
        == [rid]
    assert server.get(f"/fhir/Observation/{rid}", citizen(mother)).status_code == 200
    assert server.get("/fhir/Observation", citizen(stranger), **search).status_code == 403
    assert server.get(f"/fhir/Observation/{rid}", citizen(stranger)).status_code == 404


def test_a_citizen_without_a_proxy_is_refused_as_before(server: Server) -> None:
    child, annual, _, _ = child_record(server)
    mother, neighbour = parent(), aged(38, given="Nabo")
    registered(server, "custody", mother, child)
    r = server.search(citizen(neighbour), child)
    assert r.status_code == 403 and "citizen-other-patient" in finding_codes(r.json())
    assert server.get(f"/fhir/DocumentReference/{annual['id']}", citizen(neighbour)).status_code == 404
    # a proxy runs one way: the child is not the parent's proxy
    assert server.search(citizen(child), mother).status_code == 403


@pytest.mark.parametrize("window", ["ended", "not yet begun", "ended by the admin"])
def test_a_proxy_counts_only_while_it_lasts(server: Server, window: str) -> None:
    child, *_ = child_record(server)
    mother = parent()
    if window == "ended":
        registered(server, "custody", mother, child, start=days_from_now(-30), end=days_from_now(-1))
    elif window == "not yet begun":
        registered(server, "custody", mother, child, start=days_from_now(3))
    else:
        pid = registered(server, "custody", mother, child)["id"]
        assert server.search(citizen(mother), child).status_code == 200
        ended = server.request("DELETE", f"/admin/proxies/{pid}", ADMIN)
        assert ended.status_code == 200 and ended.json()["ended"] is True
        [row] = server.get("/admin/proxies", ADMIN, params={"holder": mother.cpr}).json()
        assert row["ended_by"] == ADMIN.actor and row["end"] is not None
    r = server.search(citizen(mother), child)
    assert r.status_code == 403 and "citizen-other-patient" in finding_codes(r.json())


def test_custody_is_for_a_child_under_15_and_ends_on_the_15th_birthday(server: Server) -> None:
    mother = parent()
    fifteen = aged(15, days=1, given="Frida")  # turned 15 yesterday
    before = proxy_rows(server)
    r = register(server, "custody", mother, fifteen)
    assert r.status_code == 422 and "proxy-child-over-15" in finding_codes(r.json())
    assert proxy_rows(server) == before
    assert server.search(citizen(mother), fifteen).status_code == 403
    # A child who turns 15 in ten days: the custody registered to run for years ends on that birthday, as the
    # Danish day begins.
    nearly = aged(15, days=-10, given="Nora")
    birthday = today() + dt.timedelta(days=10)
    got = registered(server, "custody", mother, nearly, end="2099-12-31")
    assert got["end"] == birthday_begins(birthday)
    unborn = born(dt.date(2036, 1, 1))  # a number that names a birth still to come
    r = register(server, "custody", mother, unborn)
    assert r.status_code == 422 and "proxy-not-born" in finding_codes(r.json())


def test_custody_no_longer_holds_once_the_child_is_15_whatever_was_stored() -> None:
    """Rows registered before the rule (or by hand) cannot outlast the 15th birthday: the rule asks it too."""
    teen = aged(15, days=2)
    mother = parent()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stored = policy.Proxy("x", "custody", mother.cpr, teen.cpr, now - dt.timedelta(days=400), None)
    assert policy.acting_for(citizen(mother), teen.cpr, [stored], now) is None
    younger = aged(14)
    kept = policy.Proxy("y", "custody", mother.cpr, younger.cpr, now - dt.timedelta(days=400), None)
    assert policy.acting_for(citizen(mother), younger.cpr, [kept], now) == kept


def test_fuldmagt_is_given_by_someone_aged_15_or_more(server: Server) -> None:
    holder = aged(45, given="Hans", family="Fuldmægtig")
    grantor = aged(82, given="Grethe", family="Giver")
    young = aged(15, days=-30, given="Ung")  # 15 in a month
    r = register(server, "fuldmagt", holder, young)
    assert r.status_code == 422 and "proxy-grantor-under-15" in finding_codes(r.json())
    doc = server.shared(source(), note(grantor))
    got = registered(server, "fuldmagt", holder, grantor)
    assert got["end"] is None  # until it is ended
    assert ids(server.search(citizen(holder), grantor).json()) == {doc["id"]}


@pytest.mark.parametrize(("body", "key"), [
    ({"kind": "guardian"}, "proxy-kind"),
    ({"holder": "12345"}, "proxy-cpr"),
    ({"holder": "3102851234"}, "proxy-cpr"),  # 31 February
    ({"subject": None}, "proxy-cpr"),
    ({"same": True}, "proxy-self"),
    ({"start": "i morgen"}, "bad-date"),
    ({"start": "2026-06-30", "end": "2026-06-01"}, "bad-period"),
], ids=["unknown kind", "short CPR", "no such date", "no subject", "oneself", "start not a date", "ends first"])
def test_a_bad_proxy_request_is_refused_and_nothing_is_stored(server: Server, body: dict[str, Any],
                                                              key: str) -> None:
    mother, child = parent(), aged(6)
    request = {"kind": "custody", "holder": mother.cpr, "subject": child.cpr}
    if body.get("same"):
        request["subject"] = mother.cpr
    request.update({k: v for k, v in body.items() if k != "same"})
    before = proxy_rows(server)
    r = server.request("POST", "/admin/proxies", ADMIN, json={k: v for k, v in request.items() if v is not None})
    assert r.status_code == 400 and is_outcome(r), r.text
    assert key in finding_codes(r.json())
    assert proxy_rows(server) == before


def test_proxies_are_listed_by_holder_or_subject(server: Server) -> None:
    mother, father = parent(), aged(42, given="Far")
    child, sibling = aged(3), aged(9)
    first = registered(server, "custody", mother, child)
    a = first["id"]
    b = registered(server, "custody", mother, sibling)["id"]
    c = registered(server, "custody", father, child)["id"]
    by_holder = server.get("/admin/proxies", ADMIN, params={"holder": mother.cpr}).json()
    assert {p["id"] for p in by_holder} == {a, b}
    # listed with the names the registration took, as the registration's answer has them
    [listed] = [p for p in by_holder if p["id"] == a]
    assert {k: listed[k] for k in first} == first
    assert (listed["holder"], listed["subject"]) == (mother.cpr, child.cpr)
    assert {p["id"] for p in server.get("/admin/proxies", ADMIN, params={"subject": child.cpr}).json()} == {a, c}
    both = server.get("/admin/proxies", ADMIN, params={"holder": father.cpr, "subject": child.cpr}).json()
    assert [p["id"] for p in both] == [c]
    r = server.get("/admin/proxies", ADMIN)
    assert r.status_code == 400 and "proxy-query" in finding_codes(r.json())
    assert server.request("DELETE", "/admin/proxies/nothing-here", ADMIN).status_code == 404


# -- blocks still hold ---------------------------------------------------------------------------------------

def test_the_childs_blocks_still_hold_for_professionals_but_not_for_the_parent(server: Server) -> None:
    child, annual, dk, doctor = child_record(server)
    old = server.shared(source(OTHER_CLINIC), note(child, OTHER_CLINIC, created="2025-05-02T10:00:00+02:00",
                                                  updated="2025-05-02T10:20:00+02:00"))
    mother = parent()
    registered(server, "custody", mother, child)
    # The blocks are set for the child (by the admin on the child's behalf, as a support desk would).
    assert server.block(ADMIN, child, kind="organisation", organisation=OTHER_CLINIC.sor).status_code == 201
    assert ids(server.search(doctor, child).json()) == {annual["id"], dk["id"]}
    assert ids(server.search(citizen(mother), child).json()) == {annual["id"], dk["id"], old["id"]}
    assert server.block(ADMIN, child, kind="general").status_code == 201
    assert server.search(doctor, child).json()["total"] == 0
    assert server.search(citizen(mother), child).json()["total"] == 3


def test_a_proxy_does_not_let_the_holder_manage_the_subjects_blocks(server: Server) -> None:
    child, *_ = child_record(server)
    mother = parent()
    registered(server, "custody", mother, child)
    r = server.block(citizen(mother), child, kind="general")
    assert r.status_code == 403 and "only-the-citizen-blocks" in finding_codes(r.json())
    assert server.get("/blocks", citizen(mother), params={"patient": child.cpr}).status_code == 403


def test_a_proxy_never_lifts_a_block_for_a_professional() -> None:
    """Whatever identifiers a professional's token carries, a proxy is a citizen's: a clinician whose CPR holds a
    proxy for the patient is still answered with nothing under a general block, and filtered under another."""
    child, holder = aged(7), aged(39)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    proxies = [policy.Proxy("p", "custody", holder.cpr, child.cpr, now - dt.timedelta(days=1), None)]
    doctor = Principal("clinician", cpr=holder.cpr, auth_id="D1", sor=s.HOSPITAL_SOR)
    relation = policy.Relation(child.cpr, "D1", None, now - dt.timedelta(days=1), None)
    general = policy.Block("b", child.cpr, "general")
    d = policy.may_read(doctor, child.cpr, [relation], [general], None, now, proxies)
    assert d.nothing and d.acting_for is None
    org = policy.Block("o", child.cpr, "organisation", org_sor=OTHER_CLINIC.sor)
    d = policy.may_read(doctor, child.cpr, [relation], [org], None, now, proxies)
    assert d.hidden == (org,) and d.acting_for is None
    assert not policy.may_read(doctor, child.cpr, [], [], None, now, proxies).allowed


# -- who acted for whom ----------------------------------------------------------------------------------------

def test_the_childs_minlog_shows_the_parents_look_ups_and_the_parents_does_not(server: Server) -> None:
    child, annual, _, _ = child_record(server)
    mother = parent()
    registered(server, "custody", mother, child)
    me = citizen(mother)
    server.search(me, child)
    server.get(f"/fhir/DocumentReference/{annual['id']}", me)
    r = server.get("/fhir/AuditEvent", me, params={"patient.identifier": child.identifier, "_count": "100"})
    assert r.status_code == 200, r.text
    seen = [e["resource"] for e in r.json()["entry"]]
    on_behalf = [e for e in seen if e["agent"][0]["who"]["identifier"]["value"] == mother.cpr]
    assert len(on_behalf) >= 2
    for e in on_behalf:
        agent = e["agent"][0]
        assert agent["who"]["display"] == f"{mother.name} på vegne af {child.cpr}"
        assert agent["role"][0]["coding"][0]["code"] == "custody"
        assert {c["code"] for p in e["purposeOfEvent"] for c in p["coding"]} == {"PWATRNY"}
        assert {x["what"]["identifier"]["value"] for x in e["entity"] if "identifier" in x["what"]} == {child.cpr}
    # The full log (admin): actor the holder, patient the child, the kind in the detail.
    full = [e for e in server.audit_log(child) if e["agent"][0]["who"]["identifier"]["value"] == mother.cpr]
    assert {e["subtype"][0]["code"] for e in full} >= {"ITI-67"}
    # The parent's own MinLog holds nothing of the child.
    own = server.get("/fhir/AuditEvent", me, params={"_count": "1000"}).text
    assert child.cpr not in own and annual["id"] not in own


def test_the_access_log_says_a_proxy_acted_without_naming_anyone() -> None:
    line = AccessLog.proxy({"state": {"kroniker.acting_for": "fuldmagt"}})
    assert line == " proxy=fuldmagt actor=cpr:********** subject=cpr:**********"
    assert AccessLog.proxy({"state": {}}) == AccessLog.proxy({}) == ""


def test_wrong_roles_cannot_administer_proxies(server: Server) -> None:
    mother, child = parent(), aged(5)
    pid = registered(server, "custody", mother, child)["id"]
    body = {"kind": "custody", "holder": mother.cpr, "subject": child.cpr}
    before = proxy_rows(server)
    for who in (citizen(mother), citizen(child), source(), clinician("Q1"), DPO):
        for method, path, kwargs in (("POST", "/admin/proxies", {"json": body}),
                                     ("GET", "/admin/proxies", {"params": {"holder": mother.cpr}}),
                                     ("DELETE", f"/admin/proxies/{pid}", {})):
            r = server.request(method, path, who, **kwargs)
            assert r.status_code == 403 and "admin-only" in finding_codes(r.json()), (who.role, method, r.text)
    assert proxy_rows(server) == before
    assert server.search(citizen(mother), child).status_code == 200  # still in force


# -- embargo ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def embargo_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   package_cache: PackageCache) -> Iterator[Server]:
    """A server that holds notes back from citizens for a day."""
    with s.server_for(request, tmp_path_factory, package_cache, embargo={NOTE_TYPE: 24}) as srv:
        yield srv


def _now_danish() -> str:
    return dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=1))).replace(microsecond=0).isoformat()


def test_an_embargoed_note_is_hidden_from_the_citizen_and_the_proxy_until_its_time(embargo_server: Server) -> None:
    server = embargo_server
    child = aged(10)
    mother = parent()
    registered(server, "custody", mother, child)
    now = _now_danish()
    fresh = server.shared(source(), note(child, created=now, updated=now))
    old = server.shared(source(), note(child, created="2026-11-02T09:00:00+01:00", updated="2026-11-02T09:30:00+01:00"))
    dk = server.shared(source(), card(child))  # another type: no embargo
    doctor = clinician(f"E{uuid.uuid4().hex[:8]}")
    server.relate(child, clinician_id=doctor.auth_id)
    for reader in (citizen(child), citizen(mother)):
        bundle = server.search(reader, child).json()
        assert ids(bundle) == {old["id"], dk["id"]} and bundle["total"] == 2
        for path in (f"/fhir/DocumentReference/{fresh['id']}", f"/fhir/Bundle/{fresh['id']}",
                     f"/fhir/DocumentReference/{fresh['id']}/_history",
                     f"/fhir/DocumentReference/{fresh['id']}/_history/1"):
            r = server.get(path, reader)
            assert r.status_code == 404 and "unknown-document" in finding_codes(r.json()), path
        assert server.get(f"/fhir/DocumentReference/{old['id']}", reader).status_code == 200
    assert ids(server.search(doctor, child).json()) == {fresh["id"], old["id"], dk["id"]}
    assert server.get(f"/fhir/Bundle/{fresh['id']}", doctor).status_code == 200


def test_without_an_embargo_the_citizen_sees_a_note_at_once(server: Server) -> None:
    child = aged(10)
    now = _now_danish()
    fresh = server.shared(source(), note(child, created=now, updated=now))
    assert ids(server.search(citizen(child), child).json()) == {fresh["id"]}


def test_the_embargo_rule_holds_back_until_the_date_plus_the_delay() -> None:
    now = dt.datetime(2026, 12, 5, 12, 0)
    held = policy.citizen_embargo({NOTE_TYPE: 24, "11450-4": 0}, now)
    assert held == ((NOTE_TYPE, dt.datetime(2026, 12, 4, 12, 0)),)  # a delay of 0 holds nothing back

    def doc(code: str, dated: dt.datetime | None) -> policy.DocInfo:
        return policy.DocInfo("d", "0101701234", "1", "current", dated, code, dated)

    assert policy.embargoed(held, doc(NOTE_TYPE, dt.datetime(2026, 12, 4, 12, 1)))
    assert not policy.embargoed(held, doc(NOTE_TYPE, dt.datetime(2026, 12, 4, 12, 0)))
    assert not policy.embargoed(held, doc("11450-4", now))
    assert policy.embargoed(held, doc(NOTE_TYPE, None))
    clinician_decision = policy.may_read(clinician("C1"), "0101701234", [policy.Relation(
        "0101701234", "C1", None, now - dt.timedelta(days=1), None)], [], None, now, (), {NOTE_TYPE: 24})
    assert clinician_decision.visible(doc(NOTE_TYPE, now))


@pytest.mark.parametrize(("env", "expected"), [
    ("", {}), ("866144008=24", {"866144008": 24.0}), (" 866144008=24 , 11450-4=0.5 ,", {"866144008": 24.0,
                                                                                          "11450-4": 0.5})])
def test_the_embargo_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, env: str,
                                                          expected: dict[str, float]) -> None:
    monkeypatch.setenv("KRONIKER_EMBARGO", env)
    assert Settings.from_env().embargo == expected
    assert Settings().embargo == {}  # the default: none


@pytest.mark.parametrize("bad", ["866144008", "=24", "866144008=-1", "866144008=soon", "866144008=nan"])
def test_a_malformed_embargo_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CODE=HOURS"):
        parse_embargo([bad])
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kroniker", "serve", "--embargo", bad, "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "CODE=HOURS" in done.stderr and "Traceback" not in done.stderr


def test_serve_help_states_the_embargo_default() -> None:
    import argparse

    from kroniker.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(sub.choices["serve"].format_help().split())
    assert "--embargo CODE=HOURS" in text and "(default: none" in text


def test_a_born_helper_follows_the_century_rule() -> None:
    # The tests' own people: their CPR numbers name the birth dates they were made for.
    from kroniker.validators.identifiers import cpr_birth_date

    for day in (dt.date(1985, 3, 4), dt.date(2014, 12, 31), dt.date(2000, 2, 29)):
        assert cpr_birth_date(born(day).cpr) == day


def test_a_served_proxy_look_up_and_embargo_as_the_operator_runs_them(tmp_path: Path,
                                                                      package_cache: PackageCache) -> None:
    """`kroniker serve --embargo` reaches the worker's app, and the access log line of a proxy's look-up says so,
    with no CPR number in it."""
    import httpx

    from kroniker.reference_server.tokens import issue, load_or_create_key
    from tests.server_process import ServerProcess
    from tests.server_support import encode

    child, mother = aged(7), aged(37)
    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home",
                       args=("--embargo", f"{NOTE_TYPE}=24")) as server:
        server.start()
        key = load_or_create_key(server.home / "token.key")

        def call(method: str, path: str, who: Principal, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> httpx.Response:
            return httpx.request(method, server.url + path, timeout=60, **kwargs,
                                 headers={"Authorization": f"Bearer {issue(key, who)}", **(headers or {})})

        now = _now_danish()
        shared = call("POST", "/fhir/Bundle", source(), content=encode(note(child, created=now, updated=now)),
                      headers={"Content-Type": s.FHIR_JSON})
        assert shared.status_code == 201, shared.text
        assert call("POST", "/admin/proxies", ADMIN, json={"kind": "custody", "holder": mother.cpr,
                                                            "subject": child.cpr}).status_code == 201
        search = {"params": {"patient.identifier": child.identifier}}
        for who in (citizen(mother), citizen(child)):
            r = call("GET", "/fhir/DocumentReference", who, **search)
            assert r.status_code == 200 and r.json()["total"] == 0, r.text  # the note is under embargo
        deadline = time.monotonic() + 30  # each line is written just after its answer is sent
        while "proxy=custody" not in server.log_tail(10**6) and time.monotonic() < deadline:
            time.sleep(0.02)
        log = server.log_tail(10**6)
    lines = [ln for ln in log.splitlines() if " ms role=citizen" in ln]
    assert any(ln.endswith("role=citizen proxy=custody actor=cpr:********** subject=cpr:**********")
               for ln in lines), lines
    assert child.cpr not in log and mother.cpr not in log

