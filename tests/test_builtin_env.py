"""The `env` database: confd's key <-> variable mapping, prefix semantics, live re-reads."""

from __future__ import annotations

import os
import threading

import pytest

from builtin.env import EnvDatabase, key_to_variable, variable_to_key
from plugin_sdk.database import DatabaseError, WatchUnsupported


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> EnvDatabase:
    """An env database over a process environment holding only the variables a test sets."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    database = EnvDatabase()
    database.configure({})
    return database


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("/db/host", "DB_HOST"),
        ("db/host", "DB_HOST"),
        ("/db/host/", "DB_HOST"),
        ("/app", "APP"),
        ("/a/b/c/d", "A_B_C_D"),
        ("/MixedCase/Key", "MIXEDCASE_KEY"),
        ("/app-name/port", "APP-NAME_PORT"),
        ("/", ""),
    ],
)
def test_key_maps_to_variable(key: str, variable: str) -> None:
    assert key_to_variable(key) == variable


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("DB_HOST", "/db/host"),
        ("APP", "/app"),
        ("MY_APP_PORT", "/my/app/port"),
        ("lower_case", "/lower/case"),
    ],
)
def test_variable_maps_back_to_key(variable: str, key: str) -> None:
    assert variable_to_key(variable) == key


@pytest.mark.parametrize(
    ("environ", "keys", "expected"),
    [
        ({"DB_HOST": "db1"}, ["/db/host"], {"/db/host": "db1"}),
        (
            {"DB_HOST": "db1", "DB_PORT": "5432", "WEB_PORT": "80"},
            ["/db"],
            {"/db/host": "db1", "/db/port": "5432"},
        ),
        ({"APP": "x", "APP_PORT": "1"}, ["/app"], {"/app": "x", "/app/port": "1"}),
        ({"APPLICATION_NAME": "no"}, ["/app"], {}),
        ({"APP_PORT": "1", "APPLICATION": "no"}, ["/app/"], {"/app/port": "1"}),
        ({"A_B": "1", "C_D": "2"}, ["/a", "/c"], {"/a/b": "1", "/c/d": "2"}),
        ({"A_B": "1", "c_d": "2"}, ["/"], {"/a/b": "1", "/c/d": "2"}),
        ({"A": "é ✓ ünïcode"}, ["/a"], {"/a": "é ✓ ünïcode"}),
        ({"EMPTY": ""}, ["/empty"], {"/empty": ""}),
        ({"db_host": "lower"}, ["/db/host"], {}),
        ({"X": "1"}, [], {}),
    ],
)
def test_get_values(
    env: EnvDatabase,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    keys: list[str],
    expected: dict[str, str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    got = env.get_values(keys)
    got.pop("/pytest/current/test", None)  # pytest sets PYTEST_CURRENT_TEST while running
    assert got == expected


def test_underscored_key_is_found_as_spelled_and_as_confd_maps_it(
    env: EnvDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_APP_PORT", "8080")
    monkeypatch.setenv("MY_APPLE", "red")
    assert env.get_values(["/my_app"]) == {"/my_app/port": "8080", "/my/app/port": "8080"}


def test_values_are_read_again_at_each_call(
    env: EnvDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_HOST", "old")
    assert env.get_values(["/db"]) == {"/db/host": "old"}
    monkeypatch.setenv("DB_HOST", "new")
    monkeypatch.setenv("DB_PORT", "1")
    assert env.get_values(["/db"]) == {"/db/host": "new", "/db/port": "1"}
    monkeypatch.delenv("DB_HOST")
    assert env.get_values(["/db"]) == {"/db/port": "1"}


def test_env_is_polled_not_watched(env: EnvDatabase) -> None:
    assert EnvDatabase.can_watch is False
    with pytest.raises(WatchUnsupported, match="'env' cannot watch"):
        next(iter(env.watch_prefix("/", [], threading.Event())))


@pytest.mark.parametrize("setting", ["file", "filter", "separator", "node"])
def test_unknown_setting_is_refused_by_name(setting: str) -> None:
    with pytest.raises(DatabaseError, match=f"backend 'env' has no setting '{setting}'"):
        EnvDatabase().configure({setting: "x"})
