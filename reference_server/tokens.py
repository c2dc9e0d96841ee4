"""Who is calling: bearer tokens (JWT, HS256) signed with a key kept in the data directory.

A token stands in for DDS's DGWS/IDWS security token plus the HSUID header: the role and the identifiers
that matter for the access rules (a citizen's CPR; a clinician's authorisation id and organisation SOR;
a GP system's SOR and ydernummer).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

ROLES = ("source", "citizen", "clinician", "admin", "dpo")
ISSUER = "kroniker"
DEFAULT_LIFETIME = 12 * 3600
MAX_LIFETIME = 24 * 3600  # Settings.max_token_lifetime's default
# Clocks of the issuer and the server may differ a little: a token may claim this much more than the maximum.
LEEWAY = 60


@dataclass(frozen=True)
class Principal:
    """The caller, as the access rules see it."""

    role: str
    cpr: str | None = None
    sor: str | None = None
    ydernummer: str | None = None
    auth_id: str | None = None
    org_name: str | None = None
    name: str | None = None
    token_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        if self.role == "citizen":
            return f"cpr:{self.cpr}"
        if self.role == "clinician":
            return f"autorisation:{self.auth_id}"
        if self.role == "source":
            return f"sor:{self.sor}"
        return f"{self.role}:{self.name or self.token_id or '?'}"


class TokenError(Exception):
    """The token is missing, malformed, expired or not signed with this server's key."""


def load_or_create_key(path: Path) -> bytes:
    """The signing key; generated (0600) on first start."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


def issue(key: bytes, principal: Principal, lifetime: int = DEFAULT_LIFETIME, *,
          max_lifetime: int = MAX_LIFETIME) -> str:
    """A signed token for the principal, valid for `lifetime` seconds; TokenError beyond `max_lifetime`."""
    if lifetime > max_lifetime:
        raise TokenError(f"a token may live at most {max_lifetime / 3600:g} hours; asked for {lifetime / 3600:g}")
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
                              "role": principal.role}
    for field in ("cpr", "sor", "ydernummer", "auth_id", "org_name", "name"):
        value = getattr(principal, field)
        if value:
            claims[field] = value
    return jwt.encode(claims, key, algorithm="HS256")


def verify(key: bytes, token: str, max_lifetime: int = MAX_LIFETIME) -> Principal:
    return _verified(key, token, max_lifetime)[0]


def _verified(key: bytes, token: str, max_lifetime: int) -> tuple[Principal, float]:
    """The token's principal and when the token expires (epoch seconds); TokenError if it does not verify."""
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "role"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None
    _check_lifetime(claims, max_lifetime)
    role = claims.get("role")
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}")
    ids = {name: _text_claim(claims, name) for name in ("cpr", "sor", "ydernummer", "auth_id", "org_name", "name",
                                                        "jti")}
    principal = Principal(role, ids["cpr"], ids["sor"], ids["ydernummer"], ids["auth_id"], ids["org_name"],
                          ids["name"], ids["jti"])
    problem = missing_identity(principal)
    if problem:
        raise TokenError(problem)
    return principal, float(claims["exp"])


def _check_lifetime(claims: dict[str, Any], max_lifetime: int) -> None:
    """A token that would stay valid longer than the server allows is refused, however well it is signed."""
    exp, iat = claims["exp"], claims.get("iat")
    if exp - time.time() > max_lifetime + LEEWAY:
        raise TokenError(f"the token is valid for more than {max_lifetime / 3600:g} hours from now")
    if isinstance(iat, (int, float)) and exp - iat > max_lifetime + LEEWAY:
        raise TokenError(f"the token was issued to live more than {max_lifetime / 3600:g} hours")


def _text_claim(claims: dict[str, Any], name: str) -> str | None:
    """An identity claim as text: a number (`"cpr": 101011234`) is its digits, so the access rules and the audit
    log see one value whatever JSON type the issuer chose; anything else that is not text is refused."""
    value = claims.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TokenError(f"the claim {name!r} is not text")


class Verifier:
    """verify() with memory: a token that verified is not verified again until it expires (a GP system sends
    the same token with every submission). At most `size` tokens are kept; then the memory starts afresh."""

    def __init__(self, key: bytes, size: int = 4096, max_lifetime: int = MAX_LIFETIME) -> None:
        self.key, self.size, self.max_lifetime = key, size, max_lifetime
        self._known: dict[str, tuple[Principal, float]] = {}

    def __call__(self, token: str) -> Principal:
        hit = self._known.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        principal, exp = _verified(self.key, token, self.max_lifetime)  # raises for a bad token: those are never kept
        if len(self._known) >= self.size:
            self._known = {}
        self._known[token] = (principal, exp)
        return principal


def missing_identity(p: Principal) -> str | None:
    """What a role must carry to be usable by the access rules."""
    if p.role == "citizen" and not p.cpr:
        return "a citizen token needs a CPR number"
    if p.role == "clinician" and not (p.auth_id and p.sor):
        return "a clinician token needs an authorisation id and the SOR of the organisation"
    if p.role == "source" and not p.sor:
        return "a GP system (source) token needs the SOR of its organisation"
    return None
