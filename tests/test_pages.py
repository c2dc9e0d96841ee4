"""The citizen's and the clinician's pages (issue 14, item 7): signed in through the form with the API's token, read
in headless Chromium with JavaScript off, screenshot kept (test-artifacts/pages/), and checked with axe-core: no
violation of impact serious or critical. What the pages show is checked against the API's own answers and rules:
newest note first, a note's active content gone, værdispring marked in words, a block added and lifted through the
forms taking effect in the API, the clinician's filters, the CSRF token, and every page request in the audit log."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from kroniker.conformance.documents import FLU_NOTE_HTML, ICPC2, PACKAGE_CODE, PACKAGE_NOTE_HTML, VACCINATION_CODE
from kroniker.reference_server.app import SESSION_COOKIE  # (first: pages.py is imported through app.py)
from kroniker.reference_server.db import documents
from kroniker.reference_server.inputs import DANISH_TIME
from kroniker.reference_server.pages import sanitise
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.tokens import Principal, issue
from kroniker.validators.packages import PackageCache
from tests.browser_support import (  # noqa: F401  (the fixtures chromium and axe)
    axe_fixture,
    check_accessibility,
    chromium_fixture,
    new_page,
    screenshot,
)
from tests.server_support import (
    ADMIN,
    GP_CLINIC,
    Patient,
    Server,
    card,
    citizen,
    clinician,
    entries,
    ids,
    is_page,
    new_patient,
    note,
    page_finding,
    running,
    source,
)

pytestmark = pytest.mark.network

CLINICIAN_PAGE = "/kliniker/patient"
HOSTILE_MARKER = "Notat med indhold der ikke må køre"
HOSTILE_HTML = (f"<p>{HOSTILE_MARKER}<script>document.title='pwned'</script>"
                "<img src=x onerror=\"document.title='pwned'\"><a href=\"javascript:alert(1)\">link</a>"
                "<b onclick=\"alert(1)\">fed</b><style>body{display:none}</style></p>")
FLU_TEXT = "Influenzavaccination givet i venstre overarm"
PACKAGE_TEXT = "Årskontrol, kroniske lænderygsmerter"


@dataclass
class Seeded:
    patient: Patient
    package: dict[str, Any]  # the care package's annual control note, 20 November 2026
    flu: dict[str, Any]  # a flu vaccination note, 15 September 2026 (shared after the package note)
    hostile: dict[str, Any]  # a note of 1 August 2026 whose stored HTML carries script (see seeded())
    card: dict[str, Any]
    doctor: Principal


def _seed(server: Server) -> Seeded:
    p = new_patient("Bente", "Sidetest")
    package = server.shared(source(), note(p, note_html=PACKAGE_NOTE_HTML, event_codes=[PACKAGE_CODE, (ICPC2, "L03")],
                                           created="2026-11-20T09:15:00+01:00", updated="2026-11-20T09:40:00+01:00"))
    flu = server.shared(source(), note(p, note_html=FLU_NOTE_HTML, event_codes=[VACCINATION_CODE],
                                       created="2026-09-15T10:00:00+02:00", updated="2026-09-15T10:05:00+02:00"))
    plain = f"<p>{HOSTILE_MARKER}</p>"
    shared = server.shared(source(), note(p, note_html=plain, created="2026-08-01T08:00:00+02:00",
                                          updated="2026-08-01T08:10:00+02:00"))
    # The server refuses a note with active content when it is shared (NOTES-OBS-NOTE-ACTIVE), and a stored document
    # cannot be changed; a page must still not trust what is stored (a document stored by an older version, or
    # written by another path). So a copy of the shared note is stored beside it with script, event handlers, a
    # javascript: link and a style in its HTML, and the shared one is marked entered-in-error (the API's PATCH).
    hostile = _stored_copy(server, shared, plain, HOSTILE_HTML)
    r = server.request("PATCH", f"/fhir/DocumentReference/{shared['id']}", ADMIN,
                       json={"status": "entered-in-error", "reason": "replaced by the test's hostile copy"})
    assert r.status_code == 200, r.text
    dk = server.shared(source(), card(p))
    doctor = clinician(f"P{p.cpr[-5:]}")
    server.relate(p, clinician_id=doctor.auth_id, evidence="referral")
    # A clinician's look-ups through the API: one plain, one with værdispring (both in the citizen's MinLog).
    assert server.search(doctor, p).status_code == 200
    assert server.search(doctor, p, headers={"X-Consent-Override": "vital-interest"}).status_code == 200
    return Seeded(p, package, flu, hostile, dk, doctor)


def _stored_copy(server: Server, shared: dict[str, Any], html: str, hostile_html: str) -> dict[str, Any]:
    """A copy of a stored note under a new id and identifier, its HTML replaced (written to the table directly)."""
    old, new = (base64.b64encode(h.encode()).decode().encode() for h in (html, hostile_html))
    with server.engine.begin() as conn:
        row = dict(conn.execute(sa.select(documents).where(documents.c.id == shared["id"])).mappings().one())
        assert old in row["content"]
        row["content"] = row["content"].replace(old, new)
        row["content_sha256"] = hashlib.sha256(row["content"]).hexdigest()
        row["id"], row["master_identifier"] = str(uuid.uuid4()), f"urn:uuid:{uuid.uuid4()}"
        docref = json.loads(row["docref"])
        docref["id"], docref["masterIdentifier"]["value"] = row["id"], row["master_identifier"]
        row["docref"] = json.dumps(docref)
        conn.execute(sa.insert(documents).values(**row))
    return docref


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    return _seed(server)


@contextmanager
def signed_in(server: Server, who: Principal) -> Iterator[httpx.Client]:
    """A client signed in through POST /login (the cookie it sets, nothing else)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/login", data={"token": issue(server.key, who)})
        assert r.status_code == 303, r.text
        yield client


def csrf_of(page_html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page_html)
    assert found, "the page's forms carry a CSRF token"
    return found.group(1)


def danish_today() -> dt.date:
    return dt.datetime.now(DANISH_TIME).date()


# -- sanitising (no server) -----------------------------------------------------------------------------------

@pytest.mark.parametrize("html", [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:alert(1)'>x</a>",
    "<p onmouseover='alert(1)'>x</p>", "<svg onload=alert(1)></svg>", "<iframe src='https://example.org'></iframe>",
    "<p style='background:url(https://example.org/x)'>x</p>", "<![CDATA[<script>alert(1)</script>]]>",
    "<x:p><x:script>alert(1)</x:script></x:p>", "<scr<script>ipt>alert(1)</script>",
])
def test_a_notes_html_keeps_nothing_active(html: str) -> None:
    out = str(sanitise(html)).lower()
    for active in ("<script", "onerror", "onload", "onmouseover", "javascript:", "<img", "<iframe", "<svg", "style=",
                   "<a ", "href"):
        assert active not in out, (html, out)


def test_a_notes_simplified_html_is_kept() -> None:
    """MedCom's simplified HTML (FNUX): paragraphs, line breaks, bold, italic, underline, monospace; MedCom's x:
    prefix read as XHTML."""
    html = "<p><b>Mål:</b> gå<br/>dagligt <i>i</i> <u>u</u> <tt>tt</tt></p><x:p>Andet <x:em>afsnit</x:em></x:p>"
    assert str(sanitise(html)) == ("<p><b>Mål:</b> gå<br>dagligt <i>i</i> <u>u</u> <tt>tt</tt></p>"
                                   "<p>Andet <em>afsnit</em></p>")


# -- signing in ----------------------------------------------------------------------------------------------------

def test_the_servers_address_in_a_browser_leads_to_the_sign_in_page(server: Server) -> None:
    """A person who opens http://host:port/ (README: the main job's server) gets to sign in, not a 404."""
    before = server.rows()["audit_events"]
    r = server.client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert server.rows()["audit_events"] == before + 1
    form = server.client.get(r.headers["location"])
    assert form.status_code == 200 and 'name="token"' in form.text


def test_signing_in_sets_a_strict_httponly_session_cookie(server: Server, seeded: Seeded) -> None:
    r = server.client.post("/login", data={"token": issue(server.key, citizen(seeded.patient))})
    assert r.status_code == 303 and r.headers["location"] == "/min-side"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=strict"} <= attributes
    assert "secure" not in attributes  # plain http here; over https the cookie is Secure
    server.client.cookies.clear()


def test_behind_an_https_base_url_the_session_cookie_is_secure(tmp_path: Path, package_cache: PackageCache) -> None:
    settings = Settings(home=tmp_path, package_cache=package_cache.root, base_url="https://kroniker.example")
    with running(settings) as server:
        r = server.client.post("/login", data={"token": issue(server.key, citizen(new_patient()))})
        assert r.status_code == 303
        assert "secure" in {a.strip().lower() for a in r.headers["set-cookie"].split(";")[1:]}


def test_signing_in_from_another_sites_form_or_as_a_role_without_a_page_is_refused(server: Server) -> None:
    """Login CSRF: another site's form (its Origin) must not sign the browser in, even with a valid token; an
    admin's or a GP system's token has no page (they use the API)."""
    token = issue(server.key, citizen(new_patient()))
    r = server.client.post("/login", data={"token": token}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers and page_finding(r) == "csrf"
    r = server.client.post("/login", data={"token": token}, headers={"Origin": server.url})
    assert r.status_code == 303
    server.client.cookies.clear()
    for who in (ADMIN, source()):
        r = server.client.post("/login", data={"token": issue(server.key, who)})
        assert r.status_code == 403 and "set-cookie" not in r.headers and page_finding(r) == "no-page-for-role"


@pytest.mark.parametrize("token", ["", "not-a-token"])
def test_a_bad_token_is_refused_with_the_form_again_and_no_cookie(server: Server, token: str) -> None:
    before = server.rows()["audit_events"]
    r = server.client.post("/login", data={"token": token})
    assert r.status_code == (400 if not token else 401)
    assert is_page(r) and "set-cookie" not in r.headers
    assert 'name="token"' in r.text and 'role="alert"' in r.text
    assert server.rows()["audit_events"] == before + 1


def test_a_page_without_a_session_says_to_sign_in(server: Server) -> None:
    for path in ("/min-side", "/kliniker/patient"):
        r = httpx.get(server.url + path)
        assert r.status_code == 401 and is_page(r) and page_finding(r) == "no-session"
        assert 'href="/login"' in r.text


def test_the_wrong_role_gets_a_readable_403_page(server: Server, seeded: Seeded) -> None:
    with signed_in(server, seeded.doctor) as doctor, signed_in(server, citizen(seeded.patient)) as patient:
        r = doctor.get("/min-side")
        assert r.status_code == 403 and is_page(r) and page_finding(r) == "citizen-page-only"
        assert "borgerens egen" in r.text  # the refusal in Danish words
        r = patient.get("/kliniker/patient", params={"cpr": seeded.patient.cpr})
        assert r.status_code == 403 and is_page(r) and page_finding(r) == "clinician-page-only"


def _sign_out_form(page_html: str) -> str | None:
    """The CSRF token of the page's "Log ud" form (a POST to /logout), or None when the page has no such form."""
    found = re.search(r'<form method="post" action="/logout">\s*<input type="hidden" name="csrf" value="([0-9a-f]*)">'
                      r'\s*<button type="submit">Log ud</button>', page_html)
    return found.group(1) if found else None


def test_a_refusal_page_offers_log_ud_to_the_signed_in_and_log_ind_to_the_signed_out(
        server: Server, seeded: Seeded) -> None:
    other = new_patient("Dorte", "Fejlside")
    with signed_in(server, citizen(seeded.patient)) as patient, signed_in(server, seeded.doctor) as doctor, \
            signed_in(server, citizen(other)) as stranger:
        own = {"patient": csrf_of(patient.get("/min-side").text), "doctor": csrf_of(doctor.get(CLINICIAN_PAGE).text),
               "stranger": csrf_of(stranger.get("/min-side").text)}
        refusals = {  # (who, status, finding) → the page
            ("doctor", 403, "citizen-page-only"): doctor.get("/min-side"),
            ("patient", 403, "clinician-page-only"): patient.get(CLINICIAN_PAGE, params={"cpr": seeded.patient.cpr}),
            ("patient", 404, "unknown-document"): patient.get(f"/notat/{uuid.uuid4()}"),
            ("stranger", 404, "unknown-document"): stranger.get(f"/notat/{seeded.package['id']}"),
            ("patient", 403, "csrf"): patient.post("/min-side/spaerringer", data={"kind": "general"}),
        }
        for (who, status, finding), r in refusals.items():
            assert r.status_code == status and is_page(r) and page_finding(r) == finding, (who, finding, r.text)
            # The header's "Log ud" as on the other pages, with the session's own CSRF token; no "Log ind" link.
            assert _sign_out_form(r.text) == own[who], (who, finding)
            assert 'href="/login"' not in r.text, (who, finding)
        # Its form signs out: the token on the refusal page is the one /logout takes.
        r = stranger.post("/logout", data={"csrf": _sign_out_form(refusals["stranger", 404, "unknown-document"].text)})
        assert r.status_code == 200 and "kroniker_session=" in r.headers["set-cookie"]
        # Signed out (the cookie gone, or never there): a 401 page with a link to /login and no "Log ud".
        for r in (stranger.get("/min-side"), httpx.get(server.url + f"/notat/{seeded.package['id']}"),
                  httpx.get(server.url + "/min-side", cookies={SESSION_COOKIE: "not-a-token"})):
            assert r.status_code == 401 and is_page(r), r.text
            assert _sign_out_form(r.text) is None and "Log ud" not in r.text
            assert re.search(r'<a href="/login">Log ind</a>', r.text)


def test_pages_carry_no_script_and_forbid_it(server: Server, seeded: Seeded) -> None:
    with signed_in(server, citizen(seeded.patient)) as patient, signed_in(server, seeded.doctor) as doctor:
        answers = [patient.get("/min-side"), patient.get(f"/notat/{seeded.hostile['id']}"), httpx.get(
            server.url + "/login"), doctor.get("/kliniker/patient", params={"cpr": seeded.patient.cpr})]
    for r in answers:
        assert r.status_code == 200, r.text
        assert "<script" not in r.text.lower() and "onerror" not in r.text.lower()
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "script-src" not in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"


# -- the citizen's page ------------------------------------------------------------------------------------------

def test_the_citizens_page_in_chromium(server: Server, seeded: Seeded, chromium: Any, axe: str,
                                       request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.id
    page = new_page(chromium)
    page.goto(f"{server.url}/login")
    screenshot(page, f"login-{kind}")
    assert check_accessibility(page, axe, "login") == []
    page.get_by_label("Token").fill(issue(server.key, citizen(seeded.patient)))
    page.get_by_role("button", name="Log ind").click()
    assert page.url == f"{server.url}/min-side"
    assert page.locator("html").get_attribute("lang") == "da"
    assert page.get_by_role("heading", level=1).inner_text().startswith("Min side")

    # Own notes, newest first by the note's own date (the flu note was shared after the package note).
    notes = page.locator("section[aria-labelledby=notater] article").all_inner_texts()
    assert len(notes) == 3
    order = [next(i for i, t in enumerate(notes) if marker in t) for marker in (PACKAGE_TEXT, FLU_TEXT, HOSTILE_MARKER)]
    assert order == [0, 1, 2]
    # The stored script, handler, link and style did not survive: nothing ran, nothing hidden, no link.
    assert page.title() != "pwned" and page.locator("main").is_visible()
    main_html = page.locator("main").inner_html().lower()
    assert "<script" not in main_html and "onerror" not in main_html and "javascript:" not in main_html
    assert "<img" not in main_html and "onclick" not in main_html
    assert page.locator("article", has_text=HOSTILE_MARKER).locator("b").inner_text() == "fed"

    # The diagnosis card.
    card_section = page.locator("section[aria-labelledby=diagnosekort]")
    assert "Lændesmerter" in card_section.locator("table").inner_text()

    # The access log: the MinLog the API gives the citizen, the look-up with værdispring said in words (the doctor's
    # two look-ups of _seed, and any earlier test's without værdispring).
    texts = page.locator("section[aria-labelledby=minlog] tbody tr").all_inner_texts()
    minlog = server.minlog(seeded.patient)
    assert len(texts) == len(minlog) >= 2, texts
    marked = [t for t in texts if "Værdispring:" in t]
    assert len(marked) == 1 and "vitale interesser" in marked[0]
    assert all(t.rstrip().endswith("Nej") for t in texts if t not in marked)
    screenshot(page, f"min-side-{kind}")
    assert check_accessibility(page, axe, "min-side") == []


def test_a_block_added_and_lifted_through_the_forms_takes_effect_in_the_api(
        server: Server, seeded: Seeded, chromium: Any, axe: str, request: pytest.FixtureRequest) -> None:
    p, doctor = seeded.patient, seeded.doctor
    everything = {seeded.package["id"], seeded.flu["id"], seeded.hostile["id"], seeded.card["id"]}
    assert ids(server.search(doctor, p).json()) == everything
    page = new_page(chromium)
    page.goto(f"{server.url}/login")
    page.get_by_label("Token").fill(issue(server.key, citizen(p)))
    page.get_by_role("button", name="Log ind").click()

    page.get_by_label("Hvad vil du spærre for?").select_option("organisation")
    page.get_by_label("Organisationens SOR-nummer").fill(GP_CLINIC.sor)
    page.get_by_role("button", name="Tilføj spærring").click()
    assert page.url.startswith(f"{server.url}/min-side")
    blocks = page.locator("section[aria-labelledby=spaerringer] tbody tr")
    assert blocks.count() == 1 and "Aktiv" in blocks.first.inner_text() and GP_CLINIC.sor in blocks.first.inner_text()
    screenshot(page, f"min-side-spaerring-{request.node.callspec.id}")
    assert check_accessibility(page, axe, "min-side with a block") == []

    # In the API: the clinic's documents are hidden from the doctor, with the block warning.
    bundle = server.search(doctor, p).json()
    assert ids(bundle) == set() and entries(bundle, "OperationOutcome")
    listed = server.get("/blocks", citizen(p)).json()
    assert [(b["kind"], b["org_sor"], b["lifted"]) for b in listed] == [("organisation", GP_CLINIC.sor, None)]

    page.get_by_role("button", name=re.compile("^Ophæv")).click()
    assert "Ophævet" in page.locator("section[aria-labelledby=spaerringer] tbody tr").first.inner_text()
    bundle = server.search(doctor, p).json()
    assert ids(bundle) == everything and not entries(bundle, "OperationOutcome")
    assert server.get("/blocks", citizen(p)).json()[0]["lifted"] is not None


def test_a_form_without_its_csrf_token_changes_nothing(server: Server, seeded: Seeded) -> None:
    other = new_patient("Carl", "Csrf")
    with signed_in(server, citizen(seeded.patient)) as patient, signed_in(server, citizen(other)) as stranger:
        own = csrf_of(patient.get("/min-side").text)
        foreign = csrf_of(stranger.get("/min-side").text)
        assert own != foreign
        before = server.rows()
        for data in ({"kind": "general"}, {"kind": "general", "csrf": foreign}, {"kind": "general", "csrf": ""}):
            r = patient.post("/min-side/spaerringer", data=data)
            assert r.status_code == 403 and is_page(r) and page_finding(r) == "csrf", r.text
        assert server.rows()["blocks"] == before["blocks"]
        # Signing out takes the token too.
        assert patient.post("/logout", data={}).status_code == 403
        r = patient.post("/logout", data={"csrf": own})
        assert r.status_code == 200 and "kroniker_session=" in r.headers["set-cookie"]
        assert patient.get("/min-side").status_code == 401


def test_a_citizen_cannot_lift_another_citizens_block_through_the_page(server: Server, seeded: Seeded) -> None:
    other = new_patient("Dorte", "Anden")
    block = server.block(citizen(other), kind="general").json()["id"]
    with signed_in(server, citizen(seeded.patient)) as patient:
        token = csrf_of(patient.get("/min-side").text)
        r = patient.post(f"/min-side/spaerringer/{block}/ophaev", data={"csrf": token})
        assert r.status_code == 404 and is_page(r) and page_finding(r) == "unknown-block"
    assert server.get("/blocks", citizen(other)).json()[0]["lifted"] is None


def test_an_incomplete_block_is_refused_as_a_page(server: Server, seeded: Seeded) -> None:
    with signed_in(server, citizen(seeded.patient)) as patient:
        token = csrf_of(patient.get("/min-side").text)
        before = server.rows()["blocks"]
        r = patient.post("/min-side/spaerringer", data={"csrf": token, "kind": "organisation"})
        assert r.status_code == 400 and is_page(r) and page_finding(r) == "block-needs-organisation"
        assert server.rows()["blocks"] == before


def test_every_page_request_is_in_the_audit_log(server: Server, seeded: Seeded) -> None:
    with signed_in(server, citizen(seeded.patient)) as patient:
        for path, status in (("/min-side", 200), (f"/notat/{seeded.flu['id']}", 200), ("/notat/not-a-document", 404),
                             ("/kliniker/patient", 403)):
            before = server.rows()["audit_events"]
            assert patient.get(path).status_code == status
            assert server.rows()["audit_events"] == before + 1, path  # one record per request, as the API's


# -- the clinician's page ----------------------------------------------------------------------------------------

def _rows(page: Any) -> list[str]:
    return page.locator("section[aria-labelledby=resultat] tbody tr").all_inner_texts()


def test_the_clinicians_page_in_chromium(server: Server, seeded: Seeded, chromium: Any, axe: str,
                                         request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.id
    p = seeded.patient
    page = new_page(chromium)
    page.goto(f"{server.url}/login")
    page.get_by_label("Token").fill(issue(server.key, seeded.doctor))
    page.get_by_role("button", name="Log ind").click()
    assert page.url == f"{server.url}/kliniker/patient"
    screenshot(page, f"kliniker-{kind}")
    assert check_accessibility(page, axe, "kliniker") == []

    minlog_before = len(server.minlog(p))
    page.get_by_label("CPR-nummer").fill(p.cpr)
    page.get_by_role("button", name="Vis dokumenter").click()
    rows = _rows(page)
    assert len(rows) == 4, rows
    # The look-up is the API's: in the citizen's MinLog, as a search (ITI-67).
    log = server.minlog(p)
    assert len(log) == minlog_before + 1 and log[0]["subtype"][0]["code"] == "ITI-67"
    screenshot(page, f"kliniker-patient-{kind}")
    assert check_accessibility(page, axe, "kliniker with documents") == []

    # Filters: type, event (the care package's code), period (registration date, Danish days).
    page.get_by_label("Dokumenttype").select_option("diagnosekort")
    page.get_by_role("button", name="Vis dokumenter").click()
    rows = _rows(page)
    assert len(rows) == 1 and "Diagnosekort" in rows[0]
    page.get_by_label("Dokumenttype").select_option("")
    page.get_by_label("Hændelse (forløbspakke eller kode)").fill(f"{PACKAGE_CODE[0]}|{PACKAGE_CODE[1]}")
    page.get_by_role("button", name="Vis dokumenter").click()
    rows = _rows(page)
    assert len(rows) == 1 and PACKAGE_CODE[1] in rows[0]
    page.get_by_label("Hændelse (forløbspakke eller kode)").fill(VACCINATION_CODE[1])
    page.get_by_role("button", name="Vis dokumenter").click()
    assert len(_rows(page)) == 1
    page.get_by_label("Hændelse (forløbspakke eller kode)").fill("")
    tomorrow = (danish_today() + dt.timedelta(days=1)).isoformat()
    page.get_by_label("Registreret fra").fill(tomorrow)
    page.get_by_role("button", name="Vis dokumenter").click()
    assert _rows(page) == [] and "Ingen dokumenter" in page.locator("main").inner_text()
    page.get_by_label("Registreret fra").fill(danish_today().isoformat())
    page.get_by_label("Registreret til og med").fill(danish_today().isoformat())
    page.get_by_role("button", name="Vis dokumenter").click()
    assert len(_rows(page)) == 4

    # A note read from the list: the sanitised note, in MinLog as a retrieval.
    page.get_by_role("link", name=re.compile("Journalnotat")).first.click()
    assert page.url.startswith(f"{server.url}/notat/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Journalnotat")
    assert server.minlog(p)[0]["subtype"][0]["code"] == "ITI-68"
    screenshot(page, f"notat-{kind}")
    assert check_accessibility(page, axe, "notat") == []

    # A refusal is a page too, and as accessible: the citizen's page for a clinician.
    answer = page.goto(f"{server.url}/min-side")
    assert answer.status == 403 and page.get_by_role("heading", level=1).inner_text() == "Ingen adgang"
    screenshot(page, f"afvist-{kind}")
    assert check_accessibility(page, axe, "afvist") == []
    # Its "Log ud" signs the clinician out; the next page says to sign in, with no "Log ud" of its own.
    page.get_by_role("button", name="Log ud").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Du er logget ud"
    answer = page.goto(f"{server.url}/kliniker/patient")
    assert answer.status == 401 and page.get_by_role("button", name="Log ud").count() == 0
    assert page.get_by_role("link", name="Log ind").get_attribute("href") == "/login"
    screenshot(page, f"logget-ud-afvist-{kind}")
    assert check_accessibility(page, axe, "afvist, logget ud") == []


def test_the_clinicians_page_follows_blocks_and_vaerdispring_as_the_api(server: Server, seeded: Seeded) -> None:
    p = seeded.patient
    block = server.block(citizen(p), kind="general").json()["id"]
    try:
        with signed_in(server, seeded.doctor) as doctor:
            before = len(server.minlog(p))
            r = doctor.get("/kliniker/patient", params={"cpr": p.cpr})
            assert r.status_code == 200 and "Ingen dokumenter" in r.text
            assert len(server.minlog(p)) == before  # DDS: a general block answers with nothing, not in MinLog
            r = doctor.get("/kliniker/patient", params={"cpr": p.cpr, "vaerdispring": "consent"})
            assert r.status_code == 200 and r.text.count("/notat/") == 4
            assert "Værdispring" in r.text
            log = server.minlog(p)
            assert len(log) == before + 1
            assert [c["code"] for c in log[0]["purposeOfEvent"][1]["coding"]] == ["consent"]
            # The note link carries the værdispring; without it the block holds (404, as the API).
            link = re.search(r'href="(/notat/[^"]+_consent-override=consent)"', r.text)
            assert link is not None
            assert doctor.get(link.group(1).replace("&amp;", "&")).status_code == 200
            no_override = link.group(1).split("?")[0]
            r = doctor.get(no_override)
            assert r.status_code == 404 and is_page(r) and page_finding(r) == "unknown-document"
            assert "findes ikke her" in r.text  # in Danish, whatever language the browser asks for
            # A doctor without a treatment relation is refused as by the API, with the reason in words.
            with signed_in(server, clinician("Q99999")) as stranger:
                r = stranger.get("/kliniker/patient", params={"cpr": p.cpr})
                assert r.status_code == 403 and page_finding(r) == "no-treatment-relation"
    finally:
        assert server.request("DELETE", f"/blocks/{block}", citizen(p)).status_code == 200


def test_a_malformed_cpr_is_a_readable_400_page(server: Server, seeded: Seeded) -> None:
    with signed_in(server, seeded.doctor) as doctor:
        r = doctor.get("/kliniker/patient", params={"cpr": "12<script>"})
        assert r.status_code == 400 and is_page(r) and "<script>" not in r.text
