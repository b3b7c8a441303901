"""Bearer tokens with roles, stored only as hashes.

The tokens file (YAML) names who holds which token and what they may do::

    tokens:
      - identity: alice
        roles: [deployer, approver]
        hash: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      - identity: alertmanager
        roles: [alerts]
        hash: sha256:...

Roles: ``reader`` (registry and rollout reads), ``deployer`` (registry writes,
start/pause/resume/abort rollouts), ``approver`` (approve promotions),
``alerts`` (the alert intake endpoint only, for Alertmanager's own token) and
``admin``, which implies every other role. ``deployer`` and ``approver`` also
imply ``reader``; ``alerts`` does not, so a leaked Alertmanager token reads
nothing.

Why unsalted SHA-256 and not scrypt/PBKDF2: the tokens are machine-generated
secrets with 256 bits of entropy (``generate_token``), not passwords. Salting and
key stretching defend low-entropy secrets against guessing; against a 256-bit
random value guessing is already infeasible, so stretching adds nothing but
cost, and that cost (tens of milliseconds of CPU per request on a shared
2-core host) would land on every API call, the resolve hot path included.
``hash_token`` refuses short tokens so a hand-picked weak token cannot get in
through this reasoning. Comparison is constant-time (``hmac.compare_digest``)
and runs over every stored hash, so timing reveals neither a match nor its
position.

Exceptions::

    AuthError                 base; carries ``status_code`` and a message
    ├── Unauthorized (401)    no credentials, or credentials nobody issued
    └── Forbidden (403)       a known principal without the needed role
    TokenFileError(ValueError) the tokens file is unreadable or invalid
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import yaml

__all__ = [
    "AuthError",
    "Forbidden",
    "Principal",
    "Role",
    "TokenEntry",
    "TokenFileError",
    "TokenStore",
    "Unauthorized",
    "authorize",
    "generate_token",
    "hash_token",
]

MIN_TOKEN_LENGTH = 32  # characters; generate_token() makes 46
TOKEN_PREFIX = "mrt_"  # noqa: S105 -- a public prefix that makes leaked tokens easy to scan for
_HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")


class Role(StrEnum):
    READER = "reader"
    DEPLOYER = "deployer"
    APPROVER = "approver"
    ADMIN = "admin"
    ALERTS = "alerts"


# What holding a role grants (besides the role itself).
_IMPLIES: Mapping[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset(Role),
    Role.DEPLOYER: frozenset({Role.READER}),
    Role.APPROVER: frozenset({Role.READER}),
}


class AuthError(Exception):
    """A request may not proceed; ``status_code`` is the HTTP answer."""

    status_code: ClassVar[int] = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AuthError):
    """No credentials, or credentials that match no issued token (HTTP 401)."""

    status_code = 401
    www_authenticate = 'Bearer realm="modelreg"'


class Forbidden(AuthError):
    """The caller is known but lacks the role the action needs (HTTP 403)."""

    status_code = 403


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as, and the roles they hold (as granted, before implication)."""

    identity: str
    roles: frozenset[Role]

    def has(self, role: Role | str) -> bool:
        wanted = Role(role)
        return any(r == wanted or wanted in _IMPLIES.get(r, frozenset()) for r in self.roles)


@dataclass(frozen=True, slots=True)
class TokenEntry:
    identity: str
    roles: frozenset[Role]
    digest: bytes  # the 32-byte SHA-256 of the token


def generate_token() -> str:
    """A new random token (256 bits); show it once, store only ``hash_token(token)``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The form stored in the tokens file: ``sha256:<hex>``.

    Refuses tokens shorter than 32 characters: the unsalted hash is only safe for
    high-entropy tokens (see the module docstring).
    """
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"token is {len(token)} characters; at least {MIN_TOKEN_LENGTH} are required "
            "(use generate_token())"
        )
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_bearer(header_value: str | None) -> str | None:
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class TokenStore:
    """The issued tokens, by hash; ``authenticate`` maps a header to a ``Principal``."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: str | Path) -> TokenStore:
        """Read and validate a tokens file; ``TokenFileError`` names the file and key."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot read tokens file: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise TokenFileError(
                f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start}): "
                "a tokens file is YAML"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TokenFileError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<tokens>") -> TokenStore:
        """Validate parsed YAML (``{"tokens": [...]}``); errors name ``source`` and the key."""
        if not isinstance(data, Mapping) or "tokens" not in data:
            raise TokenFileError(f"{source}: expected a mapping with a 'tokens' list")
        unknown = sorted(set(data) - {"tokens"})
        if unknown:
            raise TokenFileError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}")
        raw_entries = data["tokens"]
        if not isinstance(raw_entries, list):
            raise TokenFileError(f"{source}: 'tokens' must be a list")
        entries: list[TokenEntry] = []
        seen: dict[bytes, str] = {}
        named: dict[str, str] = {}
        for index, raw in enumerate(raw_entries):
            key = f"tokens[{index}]"
            entry = _parse_entry(raw, source=source, key=key)
            if entry.digest in seen:
                raise TokenFileError(
                    f"{source}: {key}.hash: the same token hash is also at {seen[entry.digest]}"
                )
            if entry.identity in named:
                # Audit trails and four-eyes checks name identities: one entry each.
                raise TokenFileError(
                    f"{source}: {key}.identity: {entry.identity!r} is also {named[entry.identity]}"
                    "; one entry per identity (list all its roles there)"
                )
            seen[entry.digest] = key
            named[entry.identity] = key
            entries.append(entry)
        return cls(entries)

    def authenticate(self, header_value: str | None) -> Principal | None:
        """The principal for an ``Authorization: Bearer <token>`` value, or None.

        None for a missing or malformed header and for a token nobody issued.
        """
        token = _parse_bearer(header_value)
        if token is None:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: TokenEntry | None = None
        for entry in self._entries:  # no early exit: timing reveals nothing
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        if found is None:
            return None
        return Principal(found.identity, found.roles)


def _parse_entry(raw: Any, *, source: str, key: str) -> TokenEntry:
    if not isinstance(raw, Mapping):
        raise TokenFileError(f"{source}: {key}: expected a mapping with identity, roles, hash")
    if "token" in raw:
        raise TokenFileError(
            f"{source}: {key}.token: plaintext tokens are refused; store hash: "
            "sha256:<hex> (controller.http.auth.hash_token) instead"
        )
    unknown = sorted(set(raw) - {"identity", "roles", "hash"})
    if unknown:
        raise TokenFileError(f"{source}: {key}: unknown key(s) {', '.join(map(str, unknown))}")
    identity = raw.get("identity")
    if not isinstance(identity, str) or not identity.strip():
        raise TokenFileError(f"{source}: {key}.identity: a non-empty string is required")
    roles_raw = raw.get("roles")
    if not isinstance(roles_raw, list) or not roles_raw:
        raise TokenFileError(f"{source}: {key}.roles: a non-empty list of roles is required")
    roles: set[Role] = set()
    for position, name in enumerate(roles_raw):
        try:
            roles.add(Role(name))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise TokenFileError(
                f"{source}: {key}.roles[{position}]: unknown role {name!r}; known roles: {known}"
            ) from None
    hashed = raw.get("hash")
    if not isinstance(hashed, str):
        raise TokenFileError(f"{source}: {key}.hash: required, as sha256:<64 hex digits>")
    if not _HASH_RE.fullmatch(hashed):
        if hashed.startswith(TOKEN_PREFIX) or ":" not in hashed:
            raise TokenFileError(
                f"{source}: {key}.hash: looks like a plaintext token, which is refused; "
                "store sha256:<hex> (controller.http.auth.hash_token) instead"
            )
        raise TokenFileError(f"{source}: {key}.hash: expected sha256:<64 lowercase hex digits>")
    return TokenEntry(identity.strip(), frozenset(roles), bytes.fromhex(hashed[len("sha256:") :]))


def authorize(principal: Principal | None, role: Role | str) -> Principal:
    """Return ``principal`` if it holds ``role``; raise ``Unauthorized`` / ``Forbidden``."""
    wanted = Role(role)
    if principal is None:
        raise Unauthorized(
            f"authentication required: send 'Authorization: Bearer <token>' ({wanted} role)"
        )
    if not principal.has(wanted):
        held = ", ".join(sorted(r.value for r in principal.roles)) or "none"
        raise Forbidden(f"{principal.identity!r} lacks the {wanted} role (holds: {held})")
    return principal
