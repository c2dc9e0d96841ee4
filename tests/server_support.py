"""The reference server as the server tests meet it: started for real over HTTP, documents for any patient and clinic,
tokens for each role, and a look into the database (row counts) to see that nothing was half written."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from kroniker.reference_server.app import create_app
from kroniker.reference_server.db import make_engine
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.tokens import Principal, issue, load_or_create_key
from kroniker.validators.packages import PackageCache
from tests import builders

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
TABLES = ("documents", "document_events", "treatment_relations", "blocks", "audit_events")


# -- people and places ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Patient:
    cpr: str
    given: tuple[str, ...]
    family: str

    @property
    def name(self) -> str:
        return " ".join((*self.given, self.family))

    @property
    def identifier(self) -> str:
        """The ITI-67 `patient.identifier` value."""
        return f"{CPR_SYSTEM}|{self.cpr}"


@dataclass(frozen=True)
class Clinic:
    sor: str
    ydernummer: str
    name: str


BENTE = Patient(builders.PATIENT["cpr"], tuple(builders.PATIENT["given"]), builders.PATIENT["family"])
GP_CLINIC = Clinic(builders.CLINIC["sor"], builders.CLINIC["ydernummer"], builders.CLINIC["name"])
OTHER_CLINIC = Clinic("1234561000016008", "067890", "Lægehuset ved Åen")
HOSPITAL_SOR = "7654321000016001"
PHYSIO_SOR = "5551231000016002"

_serial = itertools.count(1)


def new_patient(given: str = "Test", family: str = "Patient") -> Patient:
    """A patient no other test has used: a CPR with a valid date (DDMMYY) and a serial number."""
    n = next(_serial)
    day, month, year = 1 + n % 28, 1 + (n // 28) % 12, 40 + (n // 336) % 50
    return Patient(f"{day:02d}{month:02d}{year:02d}{7000 + n % 3000:04d}", (given,), family)


# -- documents -------------------------------------------------------------------------------------------

def _for(doc: dict[str, Any], patient: Patient, clinic: Clinic) -> dict[str, Any]:
    """Our builders' document, made about another patient and written by another clinic."""
    text = json.dumps(doc, ensure_ascii=False)
    old = builders.PATIENT
    old_name = " ".join([*old["given"], old["family"]])
    text = (text.replace(old["cpr"], patient.cpr).replace(old_name, patient.name)
            .replace(builders.CLINIC["sor"], clinic.sor).replace(builders.CLINIC["name"], clinic.name)
            .replace(f'"{builders.CLINIC["ydernummer"]}"', f'"{clinic.ydernummer}"')
            .replace(f'<td>{builders.CLINIC["ydernummer"]}</td>', f"<td>{clinic.ydernummer}</td>"))
    out = json.loads(text)
    for entry in out["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Patient":
            r["name"][0]["given"], r["name"][0]["family"] = list(patient.given), patient.family
            r["birthDate"] = _birth_date(patient.cpr)
            r["text"]["div"] = r["text"]["div"].replace(old["birthDate"], r["birthDate"])
    return out


def _birth_date(cpr: str) -> str:
    return f"19{cpr[4:6]}-{cpr[2:4]}-{cpr[0:2]}"


def note(patient: Patient = BENTE, clinic: Clinic = GP_CLINIC, *, name: str | None = None,
         note_html: str = builders.NOTE_HTML, created: str = "2026-11-20T09:15:00+01:00",
         updated: str = "2026-11-20T09:40:00+01:00", event_codes: list[tuple[str, str]] | None = None
         ) -> dict[str, Any]:
    """A Shared Note about `patient` by `clinic`; `name` picks its identifiers (a fresh one when not given)."""
    doc = builders.shared_note(note_html, created=created, updated=updated,
                               name=name or f"note-{uuid.uuid4().hex}")
    if event_codes:
        doc["entry"][0]["resource"]["event"][0]["code"] = [
            {"coding": [{"system": s, "code": c}]} for s, c in event_codes]
    return _for(doc, patient, clinic)


def card(patient: Patient = BENTE, clinic: Clinic = GP_CLINIC, *, name: str | None = None) -> dict[str, Any]:
    """A diagnosis card (ConditionList) about `patient` by `clinic`, with its own Bundle.identifier."""
    doc = _for(builders.diagnosis_card(), patient, clinic)
    doc["identifier"]["value"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name or uuid.uuid4().hex)}"
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def composition(doc: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Composition")


# -- callers ---------------------------------------------------------------------------------------------

def source(clinic: Clinic = GP_CLINIC) -> Principal:
    return Principal("source", sor=clinic.sor, ydernummer=clinic.ydernummer, org_name=clinic.name)


def citizen(patient: Patient) -> Principal:
    return Principal("citizen", cpr=patient.cpr, name=patient.name)


def clinician(auth_id: str, sor: str = HOSPITAL_SOR, name: str = "Overlæge Test") -> Principal:
    return Principal("clinician", auth_id=auth_id, sor=sor, name=name, org_name="Testsygehuset")


ADMIN = Principal("admin", name="drift")
DPO = Principal("dpo", name="databeskyttelsesrådgiver")


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def days_from_now(days: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the running server ---------------------------------------------------------------------------------

@dataclass
class Server:
    """A reference server on a loopback port, and an HTTP client for it."""

    settings: Settings
    url: str
    client: httpx.Client
    key: bytes
    _engine: sa.Engine | None = field(default=None, repr=False)

    def auth(self, principal: Principal | None, **headers: str) -> dict[str, str]:
        out = dict(headers)
        if principal is not None:
            out["Authorization"] = f"Bearer {issue(self.key, principal)}"
        return out

    def request(self, method: str, path: str, principal: Principal | None = None, *,
                headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers=self.auth(principal, **(headers or {})), **kwargs)

    def get(self, path: str, principal: Principal | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, principal, **kwargs)

    def submit(self, principal: Principal, doc: dict[str, Any] | bytes, *, replaces: str | None = None,
               content_type: str = FHIR_JSON, **headers: str) -> httpx.Response:
        body = doc if isinstance(doc, bytes) else encode(doc)
        return self.request("POST", "/fhir/Bundle", principal, content=body,
                            params={"replaces": replaces} if replaces else None,
                            headers={"Content-Type": content_type, **headers})

    def shared(self, principal: Principal, doc: dict[str, Any] | bytes, **kwargs: Any) -> dict[str, Any]:
        """Submit a document that must be accepted; its DocumentReference."""
        r = self.submit(principal, doc, **kwargs)
        assert r.status_code == 201, r.text
        return r.json()

    def search(self, principal: Principal | None, patient: Patient | str, status: str | None = "current",
               headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
        cpr = patient if isinstance(patient, str) else patient.cpr
        query = {"patient.identifier": f"{CPR_SYSTEM}|{cpr}", **({"status": status} if status else {}), **params}
        return self.get("/fhir/DocumentReference", principal, params=query, headers=headers)

    def relate(self, patient: Patient, *, clinician_id: str | None = None, organisation: str | None = None,
               evidence: str = "referral", start: str | None = None, end: str | None = None) -> str:
        body = {"patient": patient.cpr, "clinician": clinician_id, "organisation": organisation,
                "evidence": evidence, "start": start, "end": end}
        r = self.request("POST", "/admin/relations", ADMIN, json={k: v for k, v in body.items() if v})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def block(self, principal: Principal, patient: Patient | None = None, **body: Any) -> httpx.Response:
        if patient is not None:
            body["patient"] = patient.cpr
        return self.request("POST", "/blocks", principal, json=body)

    def minlog(self, patient: Patient) -> list[dict[str, Any]]:
        r = self.get("/fhir/AuditEvent", citizen(patient), params={"_count": "1000"})
        assert r.status_code == 200, r.text
        return [e["resource"] for e in r.json().get("entry", [])]

    def audit_log(self, patient: Patient | None = None) -> list[dict[str, Any]]:
        """The admin's view, oldest first."""
        params = {"_count": "1000", **({"patient.identifier": patient.identifier} if patient else {})}
        r = self.get("/fhir/AuditEvent", ADMIN, params=params)
        assert r.status_code == 200, r.text
        return [e["resource"] for e in reversed(r.json().get("entry", []))]

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database)
        return self._engine

    def rows(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}

    def status_of(self, doc_id: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT status FROM documents WHERE id = :id"), {"id": doc_id}).scalar_one()


@contextmanager
def running(settings: Settings, **app_options: Any) -> Iterator[Server]:
    """The app from create_app(settings, **app_options), served by uvicorn in a thread on a free loopback port."""
    app = create_app(settings, **app_options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the reference server did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    s = Server(settings, url, httpx.Client(base_url=url, timeout=60), load_or_create_key(settings.key_file))
    try:
        yield s
    finally:
        s.client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if s._engine is not None:
            s._engine.dispose()


def database(kind: str, request: pytest.FixtureRequest, home: Path) -> str:
    """A fresh database of the kind: SQLite in `home`, or a schema of its own in the test PostgreSQL."""
    if kind == "sqlite":
        return f"sqlite:///{home / 'kroniker.db'}"
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) when PostgreSQL is not there
    from tests.postgres import drop_schema, new_schema

    schema, url = new_schema("ks_")
    request.addfinalizer(lambda: drop_schema(schema))
    return url


@contextmanager
def server_for(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               package_cache: PackageCache, **settings: Any) -> Iterator[Server]:
    """A server on the database kind named by request.param ("sqlite" or "postgresql")."""
    home = tmp_path_factory.mktemp(f"server-{request.param}")
    url = database(request.param, request, home)
    with running(Settings(home=home, database_url=url, package_cache=package_cache.root, **settings)) as s:
        yield s


def entries(bundle: dict[str, Any], resource_type: str = "DocumentReference") -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == resource_type]


def ids(bundle: dict[str, Any]) -> set[str]:
    return {r["id"] for r in entries(bundle)}


def finding_codes(outcome: dict[str, Any]) -> set[str]:
    """Every finding code an OperationOutcome carries."""
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return {c["code"] for i in outcome["issue"] for c in i.get("details", {}).get("coding", [])}


def is_outcome(r: httpx.Response) -> bool:
    """An OperationOutcome with at least one issue, served as FHIR JSON, and no trace of Python."""
    try:
        body = r.json()
    except ValueError:
        return False
    return (r.headers.get("content-type", "").startswith(FHIR_JSON) and isinstance(body, dict)
            and body.get("resourceType") == "OperationOutcome" and bool(body.get("issue"))
            and "Traceback" not in r.text and 'File "' not in r.text)
