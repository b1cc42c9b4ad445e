"""plugin_sdk.keys: the one place backends turn confd's requested keys into what they read."""

from __future__ import annotations

import pytest

from plugin_sdk.keys import normalize_keys, outermost_keys


@pytest.mark.parametrize(
    ("keys", "every", "normalized"),
    [
        (["/app/*", "/app", "/db"], False, ["/app", "/db"]),
        (["/*", "/"], False, ["/"]),
        (["/app/*/db"], False, ["/app/*/db"]),  # only a trailing /* means "below"
        (["/app/*/db"], True, ["/app/db"]),  # Go confd's redis/zookeeper: every /* goes
        (["/a/*/*", "/a"], True, ["/a"]),
        (["/x", "/w", "/x"], False, ["/x", "/w"]),  # order kept, duplicates dropped
    ],
)
def test_normalize_keys(keys: list[str], every: bool, normalized: list[str]) -> None:
    assert normalize_keys(keys, every_wildcard=every) == normalized


@pytest.mark.parametrize(
    ("keys", "outermost"),
    [
        (["/app/db", "/app", "/application"], ["/app", "/application"]),
        (["/app/*", "/app/db/host"], ["/app"]),
        (["/a", "/"], ["/"]),
        (["/a/b", "/a/c"], ["/a/b", "/a/c"]),
    ],
)
def test_outermost_keys_drop_keys_below_another(keys: list[str], outermost: list[str]) -> None:
    assert outermost_keys(keys) == outermost
