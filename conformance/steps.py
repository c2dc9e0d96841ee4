"""The step registry and the world a scenario runs in: every request to the system under test goes through one
recorder (the session record's evidence), and every request can be replayed from a record instead."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from kroniker.reference_server.tokens import Principal

StepFn = Callable[..., None]


@dataclass(frozen=True)
class StepDef:
    kind: str
    pattern: re.Pattern[str]
    fn: StepFn


class Registry:
    """Step definitions by kind (given, when, then); a step's text must match a pattern in full."""

    def __init__(self) -> None:
        self.defs: list[StepDef] = []

    def _add(self, kind: str, *patterns: str) -> Callable[[StepFn], StepFn]:
        def register(fn: StepFn) -> StepFn:
            self.defs += [StepDef(kind, re.compile(p), fn) for p in patterns]
            return fn
        return register

    def given(self, *patterns: str) -> Callable[[StepFn], StepFn]:
        return self._add("given", *patterns)

    def when(self, *patterns: str) -> Callable[[StepFn], StepFn]:
        return self._add("when", *patterns)

    def then(self, *patterns: str) -> Callable[[StepFn], StepFn]:
        return self._add("then", *patterns)

    def find(self, kind: str, text: str) -> tuple[StepFn, dict[str, str]] | None:
        for d in self.defs:
            if d.kind == kind:
                m = d.pattern.fullmatch(text)
                if m:
                    return d.fn, {k: v for k, v in m.groupdict().items()}
        return None


class CheckFailed(AssertionError):
    """A check that did not hold. Its message is a key of conformance/messages/{da,en}.json with its values, so that
    a report gives it in the reader's language; str() is the English text (the record keeps both)."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key, self.params = key, {k: _short(v) for k, v in params.items()}
        super().__init__(message(key, "en", **self.params))


def check(holds: Any, key: str, **params: Any) -> None:
    """Fail the step with the message `key` unless `holds`."""
    if not holds:
        raise CheckFailed(key, **params)


def _short(value: Any) -> str:
    return str(value)[:MAX_VALUE]


MAX_VALUE = 1500


def message(key: str, lang: str, **params: Any) -> str:
    """A step message in Danish or English (conformance/messages)."""
    from kroniker.conformance.reports import texts

    template = texts(lang).get(key)
    if template is None:
        return key
    # A value named `…_key` is itself a message key (a file's problem): given in the same language.
    params = {(k[:-4] if k.endswith("_key") else k): (message(str(v), lang) if k.endswith("_key") else v)
              for k, v in params.items()}
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


class KeyedError(Exception):
    """An error whose message is a key of conformance/messages with its values; str() is the English text."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key, self.params = key, params
        super().__init__(message(key, "en", **params))

    def text(self, lang: str) -> str:
        return message(self.key, lang, **self.params)


def os_problem(exc: OSError | UnicodeDecodeError | ValueError) -> str:
    """A file's problem in words, not Python's: the message key for it."""
    if isinstance(exc, FileNotFoundError):
        return "file-missing"
    if isinstance(exc, IsADirectoryError):
        return "file-is-folder"
    if isinstance(exc, PermissionError):
        return "file-denied"
    if isinstance(exc, UnicodeDecodeError):
        return "file-not-utf8"
    if isinstance(exc, ValueError):
        return "file-not-json"
    return "file-unreadable"


def step_message(step: dict[str, Any], lang: str) -> str:
    """A recorded step's message in `lang` (records from before the messages had keys: their English text)."""
    if step.get("key"):
        return message(step["key"], lang, **step.get("params", {}))[:2000]
    return str(step.get("message", ""))


class Unsupported(Exception):
    """The system under test cannot be asked what a step needs (no token for a caller, a replay that ran out)."""

    def __init__(self, text: str, key: str | None = None, **params: Any) -> None:
        super().__init__(message(key, "en", **params) if key else text)
        self.key, self.params = key, {k: _short(v) for k, v in params.items()}


# -- callers and tokens ----------------------------------------------------------------------------------

def principal_key(p: Principal) -> str:
    """How a record and a vendor's token file name a caller (never the token itself)."""
    if p.role == "citizen":
        return f"citizen:{p.cpr}"
    if p.role == "clinician":
        return f"clinician:{p.auth_id}@{p.sor}"
    if p.role == "source":
        return f"source:{p.sor}"
    return p.role


def principal_claims(p: Principal) -> dict[str, str]:
    return {k: v for k, v in (("role", p.role), ("cpr", p.cpr), ("sor", p.sor), ("ydernummer", p.ydernummer),
                              ("auth_id", p.auth_id), ("org_name", p.org_name), ("name", p.name)) if v}


class Target(Protocol):
    """The system under test, as the steps reach it."""

    url: str

    def token(self, principal: Principal) -> str: ...

    def rows(self) -> dict[str, int] | None: ...

    def describe(self) -> dict[str, Any]: ...


# -- evidence -----------------------------------------------------------------------------------------------

MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # an answer larger than any document plus its metadata is not read on
RECORDED_HEADERS = ("content-type", "accept-language", "x-consent-override", "location")


def _body(content: bytes) -> dict[str, str]:
    try:
        return {"text": content.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(content).decode("ascii")}


def body_bytes(body: dict[str, str]) -> bytes:
    return body["text"].encode("utf-8") if "text" in body else base64.b64decode(body.get("base64", ""))


@dataclass
class Evidence:
    """What one scenario did and saw: every exchange, every other observation, and explicit verdicts."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # requirement id → {status, message}
    broken: dict[str, str] = field(default_factory=dict)  # requirement id → what an invariant found


# A check that holds for every answer of its kind, in every scenario: (method, path, params, response) → problems,
# each as (requirement id, message).
Invariant = Callable[[str, str, dict[str, str], httpx.Response], list[tuple[str, str]]]


class Http:
    """Requests to the target (or, replaying, the recorded answers), each written to the evidence."""

    def __init__(self, target: Target | None, evidence: Evidence, invariants: Sequence[Invariant],
                 replay: list[dict[str, Any]] | None = None) -> None:
        self.target, self.evidence, self.invariants = target, evidence, invariants
        self.replay = list(replay) if replay is not None else None
        self.client = httpx.Client(base_url=target.url, timeout=60) if target is not None and replay is None else None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def request(self, method: str, path: str, principal: Principal | None = None, *,
                params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                content: bytes | None = None, json_body: Any = None) -> httpx.Response:
        headers = dict(headers or {})
        if json_body is not None:
            content, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        request = httpx.Request(method, "http://target" + path, params=params, headers=headers, content=content)
        target_path = request.url.raw_path.decode("ascii")
        sent = {"method": method, "path": target_path, "caller": principal_key(principal) if principal else None,
                "headers": {k: v for k, v in request.headers.items() if k.lower() in RECORDED_HEADERS},
                "body": _body(content or b"")}
        if self.replay is not None:
            response = self._replayed(sent)
        else:
            assert self.client is not None and self.target is not None
            if principal is not None:
                headers["Authorization"] = f"Bearer {self.target.token(principal)}"
            response = self._bounded(self.client.build_request(method, path, params=params, headers=headers,
                                                               content=content))
        got = {"status": response.status_code,
               "headers": {k: v for k, v in response.headers.items() if k.lower() in RECORDED_HEADERS},
               "body": _body(response.content)}
        self.evidence.exchanges.append({"request": sent, "response": got})
        for check in self.invariants:
            for requirement, problem in check(method, path, dict(params or {}), response):
                self.evidence.broken.setdefault(requirement, problem)
        return response

    def _bounded(self, request: httpx.Request) -> httpx.Response:
        """The target's answer, read up to MAX_RESPONSE_BYTES (a target is tested, not trusted)."""
        assert self.client is not None
        response = self.client.send(request, stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise Unsupported("", "err-answer-too-large", method=request.method,
                                      path=request.url.path, limit=MAX_RESPONSE_BYTES)
                chunks.append(chunk)
        finally:
            response.close()
        # iter_bytes has decoded any content-encoding: the answer is kept as the decoded bytes.
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=request)

    def _replayed(self, sent: dict[str, Any]) -> httpx.Response:
        assert self.replay is not None
        if not self.replay:
            raise Unsupported("", "err-replay-no-answer", method=sent["method"], path=sent["path"])
        recorded = self.replay.pop(0)
        was = recorded["request"]
        if (was["method"], was["path"]) != (sent["method"], sent["path"]):
            raise Unsupported("", "err-replay-other-request", method=sent["method"], path=sent["path"],
                              was_method=was["method"], was_path=was["path"])
        got = recorded["response"]
        return httpx.Response(got["status"], headers=got["headers"], content=body_bytes(got["body"]),
                              request=httpx.Request(sent["method"], "http://target" + sent["path"]))


class Observer:
    """Facts read outside HTTP (row counts, a validator's report): recorded live, read back when replaying."""

    def __init__(self, evidence: Evidence, replay: list[dict[str, Any]] | None = None) -> None:
        self.evidence = evidence
        self.replay = list(replay) if replay is not None else None

    def __call__(self, name: str, read: Callable[[], Any]) -> Any:
        if self.replay is not None:
            if not self.replay or self.replay[0]["name"] != name:
                raise Unsupported("", "err-replay-no-observation", name=name)
            value = self.replay.pop(0)["value"]
        else:
            value = read()
        self.evidence.observations.append({"name": name, "value": value})
        return value


@dataclass
class Context:
    """What every scenario's world is given: the target, the recorders, and the run's numbering."""

    target: Target | None
    http: Http
    observe: Observer
    evidence: Evidence
    serial: Callable[[], int]  # a number no other scenario of this run has had
    document: Any = None  # the documents suite: the vendor's document this scenario runs with
