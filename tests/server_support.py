"""The reference server as the server tests meet it: started for real over HTTP, documents for any patient and clinic,
tokens for each role, and a look into the database (row counts) to see that nothing was half written."""

from __future__ import annotations

import datetime as dt
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from kroniker.conformance.documents import (  # noqa: F401  (re-exported for the tests)
    BENTE,
    GP_CLINIC,
    HOSPITAL_SOR,
    OTHER_CLINIC,
    PHYSIO_SOR,
    Clinic,
    Patient,
    card,
    composition,
    encode,
    note,
    numbered_patient,
)
from kroniker.reference_server.app import create_app
from kroniker.reference_server.db import make_engine
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.tokens import Principal, issue, load_or_create_key
from kroniker.validators.packages import PackageCache

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
TABLES = ("documents", "document_events", "treatment_relations", "blocks", "audit_events", "clinical_resources")


# -- people, places and documents (kroniker.conformance.documents; the conformance suite uses them too) -----

_serial = itertools.count(1)


def new_patient(given: str = "Test", family: str = "Patient") -> Patient:
    """A patient no other test has used."""
    return numbered_patient(next(_serial), given, family)


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
    """An OperationOutcome with at least one issue, served as FHIR JSON (or FHIR XML, when that was asked for:
    read by the validator's XML reader), and no trace of Python."""
    if r.headers.get("content-type", "").startswith(FHIR_XML):
        from kroniker.validators.source import Limits, Unreadable
        from kroniker.validators.xmlreader import parse_xml

        try:
            parsed = parse_xml("<answer>", r.content, Limits())
        except Unreadable:
            return False
        body: Any = parsed.data if not parsed.findings else None
        return (isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"
                and bool(body.get("issue")) and "Traceback" not in r.text and 'File "' not in r.text)
    try:
        body = r.json()
    except ValueError:
        return False
    return (r.headers.get("content-type", "").startswith(FHIR_JSON) and isinstance(body, dict)
            and body.get("resourceType") == "OperationOutcome" and bool(body.get("issue"))
            and "Traceback" not in r.text and 'File "' not in r.text)


def is_page(r: httpx.Response) -> bool:
    """An HTML page of the server's own (pages.py), in Danish, and no trace of Python."""
    return (r.headers.get("content-type", "").startswith("text/html") and '<html lang="da">' in r.text
            and "Traceback" not in r.text and 'File "' not in r.text)


def page_finding(r: httpx.Response) -> str:
    """The refusal a page names (the message key on its <main>, as an OperationOutcome's finding code)."""
    import re

    found = re.search(r'<main [^>]*data-finding="([^"]*)"', r.text)
    return found.group(1) if found else ""
