"""controller.http.auth: hashed bearer tokens, roles, and the tokens file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.http.auth import (
    Forbidden,
    Principal,
    Role,
    TokenFileError,
    TokenStore,
    Unauthorized,
    authorize,
    generate_token,
    hash_token,
)

ALICE = generate_token()
BOB = generate_token()
ROOT = generate_token()
ALERTS = generate_token()


def write_tokens(path: Path, tokens: object) -> Path:
    path.write_text(yaml.safe_dump({"tokens": tokens}))
    return path


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore.load(
        write_tokens(
            tmp_path / "tokens.yaml",
            [
                {"identity": "alice", "roles": ["deployer"], "hash": hash_token(ALICE)},
                {"identity": "bob", "roles": ["approver", "reader"], "hash": hash_token(BOB)},
                {"identity": "root", "roles": ["admin"], "hash": hash_token(ROOT)},
                {"identity": "alertmanager", "roles": ["alerts"], "hash": hash_token(ALERTS)},
            ],
        )
    )


class TestTokens:
    def test_generated_tokens_are_unique_and_long(self) -> None:
        """generate_token() gives distinct, prefixed tokens of at least 32 characters."""
        tokens = {generate_token() for _ in range(50)}
        assert len(tokens) == 50
        assert all(t.startswith("mrt_") and len(t) >= 32 for t in tokens)

    def test_hash_format(self) -> None:
        """hash_token() is sha256:<64 hex> and deterministic."""
        hashed = hash_token(ALICE)
        assert hashed.startswith("sha256:")
        assert len(hashed) == 7 + 64
        assert hash_token(ALICE) == hashed != hash_token(BOB)

    def test_short_token_refused(self) -> None:
        """A hand-picked short token cannot be hashed into the file."""
        with pytest.raises(ValueError, match="at least 32"):
            hash_token("hunter2")


class TestAuthenticate:
    def test_right_token(self, store: TokenStore) -> None:
        """A known token yields its identity and roles."""
        principal = store.authenticate(f"Bearer {ALICE}")
        assert principal == Principal("alice", frozenset({Role.DEPLOYER}))

    def test_scheme_is_case_insensitive(self, store: TokenStore) -> None:
        """'bearer' works as well as 'Bearer'."""
        assert store.authenticate(f"bearer {BOB}") is not None

    @pytest.mark.parametrize(
        "header",
        [None, "", "Bearer", "Bearer ", f"Basic {ALICE}", "Bearer " + "x" * 46, f"{ALICE}"],
    )
    def test_wrong_or_malformed(self, store: TokenStore, header: str | None) -> None:
        """Missing, malformed or unknown credentials authenticate nobody."""
        assert store.authenticate(header) is None

    def test_wrong_token_is_unauthorized(self, store: TokenStore) -> None:
        """A wrong token ends in 401 with a message saying how to authenticate."""
        with pytest.raises(Unauthorized, match="Authorization: Bearer") as caught:
            authorize(store.authenticate(f"Bearer {generate_token()}"), "reader")
        assert caught.value.status_code == 401


class TestAuthorize:
    def test_role_held(self, store: TokenStore) -> None:
        """A principal holding the role passes and is returned."""
        principal = store.authenticate(f"Bearer {ALICE}")
        assert authorize(principal, Role.DEPLOYER) is principal

    def test_wrong_role_is_forbidden(self, store: TokenStore) -> None:
        """A deployer cannot approve: 403 naming identity, wanted and held roles."""
        with pytest.raises(Forbidden, match=r"'alice' lacks the approver role \(holds: deployer\)"):
            authorize(store.authenticate(f"Bearer {ALICE}"), "approver")
        assert Forbidden.status_code == 403

    @pytest.mark.parametrize("role", list(Role))
    def test_admin_implies_every_role(self, store: TokenStore, role: Role) -> None:
        """admin passes every role check, alerts included."""
        principal = store.authenticate(f"Bearer {ROOT}")
        assert authorize(principal, role) is principal
        assert principal is not None
        assert principal.has(role)

    @pytest.mark.parametrize(
        ("token", "role", "allowed"),
        [
            (ALICE, Role.READER, True),  # deployer implies reader
            (BOB, Role.READER, True),
            (BOB, Role.DEPLOYER, False),
            (ALICE, Role.ALERTS, False),
            (ALERTS, Role.ALERTS, True),
            (ALERTS, Role.READER, False),  # the alert token reads nothing
            (ALERTS, Role.DEPLOYER, False),
        ],
    )
    def test_role_table(self, store: TokenStore, token: str, role: Role, allowed: bool) -> None:
        """Which roles imply which, as a table."""
        principal = store.authenticate(f"Bearer {token}")
        assert principal is not None
        assert principal.has(role) is allowed

    def test_unknown_role_name(self) -> None:
        """Asking for a role nobody defined is a programming error (ValueError)."""
        with pytest.raises(ValueError, match="superuser"):
            authorize(Principal("x", frozenset({Role.ADMIN})), "superuser")


class TestTokenFile:
    def test_plaintext_token_key_refused(self, tmp_path: Path) -> None:
        """An entry with token: <plaintext> is refused, naming file and key."""
        path = write_tokens(tmp_path / "t.yaml", [{"identity": "a", "roles": ["reader"]}])
        path.write_text(
            yaml.safe_dump({"tokens": [{"identity": "a", "roles": ["reader"], "token": ALICE}]})
        )
        with pytest.raises(TokenFileError, match=r"t\.yaml: tokens\[0\]\.token: plaintext"):
            TokenStore.load(path)

    def test_plaintext_in_hash_field_refused(self, tmp_path: Path) -> None:
        """A token pasted into hash: instead of its hash is refused as plaintext."""
        path = write_tokens(
            tmp_path / "t.yaml",
            [
                {"identity": "a", "roles": ["reader"], "hash": hash_token(BOB)},
                {"identity": "b", "roles": ["reader"], "hash": ALICE},
            ],
        )
        with pytest.raises(TokenFileError, match=r"tokens\[1\]\.hash: looks like a plaintext"):
            TokenStore.load(path)

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("tokens: [\n  - identity: a\n", r"t\.yaml: not valid YAML"),
            ("- a\n- b\n", r"t\.yaml: expected a mapping with a 'tokens' list"),
            ("tokens: {}\n", r"'tokens' must be a list"),
            ("tokens: []\nextra: 1\n", r"unknown key\(s\) extra"),
            ("tokens: [hello]\n", r"tokens\[0\]: expected a mapping"),
            ("tokens: [{roles: [reader], hash: x}]\n", r"tokens\[0\]\.identity"),
            ("tokens: [{identity: a, roles: [], hash: x}]\n", r"tokens\[0\]\.roles: a non-empty"),
            (
                "tokens: [{identity: a, roles: [reader, root], hash: x}]\n",
                r"tokens\[0\]\.roles\[1\]: unknown role 'root'; known roles: reader",
            ),
            ("tokens: [{identity: a, roles: [reader]}]\n", r"tokens\[0\]\.hash: required"),
            (
                "tokens: [{identity: a, roles: [reader], hash: 'md5:abc'}]\n",
                r"tokens\[0\]\.hash: expected sha256:<64",
            ),
            (
                "tokens: [{identity: a, roles: [reader], hash: x, owner: me}]\n",
                r"tokens\[0\]: unknown key\(s\) owner",
            ),
        ],
    )
    def test_malformed_file(self, tmp_path: Path, content: str, message: str) -> None:
        """Each malformed shape gets an error naming the file and the key."""
        path = tmp_path / "t.yaml"
        path.write_text(content)
        with pytest.raises(TokenFileError, match=message):
            TokenStore.load(path)

    def test_duplicate_hash_refused(self, tmp_path: Path) -> None:
        """Two entries with one token hash would make identity ambiguous."""
        entry = {"identity": "a", "roles": ["reader"], "hash": hash_token(ALICE)}
        path = write_tokens(tmp_path / "t.yaml", [entry, {**entry, "identity": "b"}])
        with pytest.raises(TokenFileError, match=r"tokens\[1\]\.hash: .* also at tokens\[0\]"):
            TokenStore.load(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a TokenFileError naming the path."""
        with pytest.raises(TokenFileError, match=r"absent\.yaml: cannot read"):
            TokenStore.load(tmp_path / "absent.yaml")

    def test_loads_all_entries(self, store: TokenStore) -> None:
        """Every valid entry is kept."""
        assert len(store) == 4
