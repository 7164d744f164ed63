"""Tests for mailwright.users: scrypt hashes, the users file and its reloading."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import pytest

from mailwright.errors import UserStoreError
from mailwright.users import (
    ScryptParams,
    UserStore,
    check_password,
    hash_password,
    parse_users,
    validate_name,
)

FAST = ScryptParams(n=1024, r=8, p=1)  # cheap for tests; the format is the same


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "var" / "users", params=FAST)


class TestHashes:
    def test_default_hash_format_carries_its_parameters(self) -> None:
        """A hash reads $scrypt$n=16384,r=8,p=1$SALT$KEY with base64 salt and key."""
        encoded = hash_password("secret")

        match = re.fullmatch(
            r"\$scrypt\$n=16384,r=8,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})", encoded
        )
        assert match is not None

    def test_salt_is_random(self) -> None:
        """The same password hashes differently each time."""
        assert hash_password("secret", FAST) != hash_password("secret", FAST)

    def test_right_and_wrong_passwords(self) -> None:
        """Only the right password matches."""
        encoded = hash_password("s3cret ünïcode", FAST)

        assert check_password("s3cret ünïcode", encoded)
        assert not check_password("s3cret unicode", encoded)
        assert not check_password("", encoded)

    @pytest.mark.parametrize(
        "encoded", ["", "plain", "$scrypt$n=1024,r=8,p=1$!!$AAAA", "$bcrypt$x$y$z"]
    )
    def test_malformed_hash_never_matches(self, encoded: str) -> None:
        """A damaged hash is a failed login, not an exception."""
        assert not check_password("anything", encoded)


class TestStore:
    def test_add_then_verify(self, store: UserStore) -> None:
        """An added user verifies with its password and only with it."""
        store.add("alice@example.test", "pw-alice")

        assert store.verify("alice@example.test", "pw-alice")
        assert not store.verify("alice@example.test", "pw-bob")
        assert not store.verify("bob", "pw-alice")

    def test_file_format_and_mode(self, store: UserStore) -> None:
        """The file holds sorted name:hash lines and only its owner may read it."""
        store.add("bob", "b")
        store.add("alice", "a")

        lines = store.path.read_text().splitlines()
        assert [line.split(":", 1)[0] for line in lines] == ["alice", "bob"]
        assert all(line.split(":", 1)[1].startswith("$scrypt$n=1024,") for line in lines)
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    def test_write_is_atomic_rename(self, store: UserStore) -> None:
        """Each change replaces the file by rename (a new inode); no temporary file remains."""
        store.add("alice", "a")
        before = store.path.stat().st_ino

        store.add("bob", "b")

        assert store.path.stat().st_ino != before
        assert sorted(p.name for p in store.path.parent.iterdir()) == ["users", "users.lock"]

    def test_set_password_and_delete(self, store: UserStore) -> None:
        """A new password replaces the old one; a deleted user no longer verifies."""
        store.add("alice", "old")

        store.set_password("alice", "new")
        assert store.verify("alice", "new")
        assert not store.verify("alice", "old")

        store.delete("alice")
        assert store.names() == []
        assert not store.verify("alice", "new")

    def test_duplicates_and_unknown_users_are_errors(self, store: UserStore) -> None:
        """Adding a taken name, or changing or deleting a missing one, raises UserStoreError."""
        store.add("alice", "a")

        with pytest.raises(UserStoreError, match="already exists"):
            store.add("alice", "b")
        with pytest.raises(UserStoreError, match="no user 'bob'"):
            store.set_password("bob", "b")
        with pytest.raises(UserStoreError, match="no user 'bob'"):
            store.delete("bob")

    @pytest.mark.parametrize("name", ["", "a:b", "a b", "-a", "é", "a\n", "x" * 129])
    def test_invalid_names(self, store: UserStore, name: str) -> None:
        """Names with separators, spaces, non-ASCII or a leading dash are refused."""
        with pytest.raises(UserStoreError, match="invalid user name"):
            store.add(name, "pw")

    @pytest.mark.parametrize("name", ["a", "alice@example.test", "a.b_c+d-e", "0" * 128])
    def test_valid_names(self, name: str) -> None:
        """Letters, digits and . _ @ + - are enough for e-mail-style names."""
        assert validate_name(name) == name

    @pytest.mark.parametrize("password", ["", "a\nb", "a\x00b"])
    def test_invalid_passwords(self, store: UserStore, password: str) -> None:
        """Empty passwords and line breaks are refused."""
        with pytest.raises(UserStoreError):
            store.add("alice", password)

    def test_missing_file_is_an_empty_store(self, store: UserStore) -> None:
        """Before the first user, there is no file and nobody verifies."""
        assert store.names() == []
        assert not store.verify("alice", "a")
        assert not store.path.exists()

    def test_reload_when_another_writer_changed_the_file(self, store: UserStore) -> None:
        """A running server's store sees users added by another process's store."""
        reader = UserStore(store.path)
        assert reader.names() == []

        store.add("alice", "a")

        assert reader.names() == ["alice"]
        assert reader.verify("alice", "a")

        store.set_password("alice", "b")
        assert reader.verify("alice", "b")

    def test_corrupt_file_names_the_line(self, store: UserStore) -> None:
        """A broken line is reported with the file and line number."""
        store.path.parent.mkdir(parents=True)
        store.path.write_text("# users\n\nalice:nothash\n")

        with pytest.raises(UserStoreError, match=r"users:3: expected NAME:\$scrypt"):
            store.names()

    def test_parse_allows_comments_and_refuses_repeats(self) -> None:
        """Comments and blank lines are skipped; a name given twice is an error."""
        line = "alice:" + hash_password("a", FAST)

        assert list(parse_users(f"# c\n\n{line}\n")) == ["alice"]
        with pytest.raises(UserStoreError, match="appears twice"):
            parse_users(f"{line}\n{line}\n")

    def test_verify_is_thread_safe(self, store: UserStore) -> None:
        """Concurrent verifications, as from asyncio.to_thread, all get the right answer."""
        store.add("alice", "a")
        results: list[bool] = []

        def work(password: str) -> None:
            results.append(store.verify("alice", password))

        threads = [threading.Thread(target=work, args=("a" if i % 2 else "x",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(results) == [False] * 4 + [True] * 4

    def test_unreadable_file_is_an_error(self, store: UserStore) -> None:
        """A users path that cannot be read raises UserStoreError, not OSError."""
        if os.geteuid() == 0:
            store.path.mkdir(parents=True)  # root reads anything; a folder cannot be read as text
        else:
            store.path.parent.mkdir(parents=True)
            store.path.write_text("")
            store.path.chmod(0)

        with pytest.raises(UserStoreError, match="cannot read"):
            store.names()
