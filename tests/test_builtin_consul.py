"""Consul backend settings: bad values are refused at configure, before anything is read."""

from __future__ import annotations

import pytest

from builtin.consul import ConsulDatabase
from plugin_sdk.database import DatabaseError


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"scheme": "ftp"}, "'scheme' must be http or https"),
        ({"nodes": "http://:80"}, "is not host:port"),
        ({"nodes": "consul:port"}, "bad port"),
        ({"watch_wait": "0"}, "'watch_wait' must be 1..600"),
        ({"watch_wait": "601"}, "'watch_wait' must be 1..600"),
        ({"client_key": "/k.pem"}, "'client_cert' and 'client_key' go together"),
        ({"client_ca_keys": "/nonexistent/ca.pem"}, "cannot read /nonexistent/ca.pem"),
        ({"tokn": "x"}, "has no setting 'tokn'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(config: dict, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        ConsulDatabase().configure(config)


def test_token_setting_is_secret_and_wins_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-env")
    database = ConsulDatabase()
    database.configure({"token": "from-setting"})
    assert {s.name for s in database.settings if s.secret} == {"password", "token"}
    assert database._clients[0][1].token == "from-setting"
