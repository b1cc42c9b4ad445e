"""Consul's environment variables, as Go's api.DefaultConfig reads them, against the Consul double.

A setting the user gave wins; a variable fills what the user left unset; an unset or empty
variable changes nothing (in particular no `X-Consul-Token` header is sent without a token).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from builtin.consul import ConsulDatabase
from integration.certs import TLSFiles, write_tls_files
from integration.consul_double import ConsulDouble
from integration.servers import free_port
from plugin_sdk.database import DatabaseError

TOKEN = "tok-CONSUL-3f9a"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONSUL_* variable of the machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CONSUL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def double() -> Iterator[ConsulDouble]:
    agent = ConsulDouble()
    agent.start()
    agent.put("app/name", "plain")
    try:
        yield agent
    finally:
        agent.stop()


def read(config: dict[str, str]) -> dict[str, str]:
    database = ConsulDatabase()
    database.configure(config)
    try:
        return database.get_values(["/app"])
    finally:
        database.close()


def test_no_token_anywhere_sends_no_token_header(double: ConsulDouble, monkeypatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "")  # empty is unset, as in Go
    assert read({"nodes": double.address}) == {"/app/name": "plain"}
    assert double.headers and all("X-Consul-Token" not in h for h in double.headers)


@pytest.mark.parametrize(
    ("setting", "variable", "token_file", "sent"),
    [
        ("from-setting", "from-variable", "from-file", "from-setting"),
        (None, "from-variable", "from-file", "from-file"),  # Go prefers the token file
        (None, "from-variable", "", "from-variable"),  # an empty file gives no token
        (None, "from-variable", None, "from-variable"),
    ],
)
def test_token_comes_from_the_setting_then_the_token_file_then_the_variable(
    double: ConsulDouble, monkeypatch, tmp_path: Path,
    setting: str | None, variable: str, token_file: str | None, sent: str,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", variable)
    if token_file is not None:
        path = tmp_path / "token"
        path.write_text(token_file + "\n")
        monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(path))
    config = {"nodes": double.address, **({"token": setting} if setting else {})}
    read(config)
    assert {h.get("X-Consul-Token") for h in double.headers} == {sent}


def test_unreadable_token_file_is_an_error_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(DatabaseError, match="CONSUL_HTTP_TOKEN_FILE: cannot read /nonexistent"):
        ConsulDatabase().configure({})


def test_consul_http_addr_is_the_agent_when_no_node_is_given(
    double: ConsulDouble, monkeypatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"http://{double.address}")
    assert read({}) == {"/app/name": "plain"}


def test_a_node_setting_wins_over_consul_http_addr(double: ConsulDouble, monkeypatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{free_port()}")  # nothing listens
    assert read({"nodes": double.address}) == {"/app/name": "plain"}


def test_a_bad_consul_http_addr_is_named(monkeypatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "unix:///run/consul.sock")
    with pytest.raises(DatabaseError, match=r"'unix:///run/consul.sock' \(from CONSUL_HTTP_ADDR\)"):
        ConsulDatabase().configure({})


@pytest.mark.parametrize(
    ("config", "variable", "user"),
    [({}, "ops:s3cret", "ops:s3cret"), ({"username": "me", "password": "pw"}, "ops:x", "me:pw"),
     ({}, "solo", "solo:")],
)
def test_basic_auth_comes_from_username_else_consul_http_auth(
    double: ConsulDouble, monkeypatch, config: dict, variable: str, user: str
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_AUTH", variable)
    read({"nodes": double.address, **config})
    expected = "Basic " + base64.b64encode(user.encode()).decode()
    assert {h.get("Authorization") for h in double.headers} == {expected}


def test_an_explicit_http_scheme_wins_over_consul_http_ssl(
    double: ConsulDouble, monkeypatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    assert read({"nodes": double.address, "scheme": "http"}) == {"/app/name": "plain"}
    with pytest.raises(DatabaseError, match=f"https://{double.address}"):
        read({"nodes": double.address})  # the variable alone: https to a plain-HTTP agent


@pytest.mark.parametrize("variable", ["CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY"])
def test_a_variable_that_is_not_a_bool_is_an_error_naming_it(monkeypatch, variable: str) -> None:
    monkeypatch.setenv(variable, "maybe")
    with pytest.raises(DatabaseError, match=f"{variable} must be true or false, got 'maybe'"):
        ConsulDatabase().configure({})


def test_a_client_key_without_its_certificate_is_named(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSUL_CLIENT_KEY", str(tmp_path / "key.pem"))
    with pytest.raises(DatabaseError, match=r"go together \(only CONSUL_CLIENT_KEY is set\)"):
        ConsulDatabase().configure({})


def test_variables_this_backend_cannot_honour_are_said_once(monkeypatch, caplog) -> None:
    monkeypatch.setenv("CONSUL_CAPATH", "/etc/consul/ca.d")
    with caplog.at_level(logging.WARNING, logger="confd.backends.consul"):
        ConsulDatabase().configure({})
    assert [r.getMessage() for r in caplog.records] == [
        "backend 'consul': CONSUL_CAPATH is ignored: a CA directory is not supported; "
        "give one file as CONSUL_CACERT"
    ]


# -- TLS, end to end: a Go confd user's environment, confd's command line ---------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"), "consul.test")


@pytest.fixture
def tls_double(tls_files: TLSFiles) -> Iterator[ConsulDouble]:
    """An HTTPS agent whose certificate names only consul.test, demanding a client certificate
    and an ACL token."""
    agent = ConsulDouble(token=TOKEN, ssl_context=tls_files.server_context(True))
    agent.start()
    agent.put("app/name", "over-tls")
    try:
        yield agent
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("drop", "extra", "status", "said"),
    [
        (None, {}, 0, None),
        ("CONSUL_TLS_SERVER_NAME", {}, 1, "certificate is not valid for '127.0.0.1'"),
        ("CONSUL_CACERT", {}, 1, "TLS: certificate verify failed"),
        ("CONSUL_CACERT", {"CONSUL_HTTP_SSL_VERIFY": "false"}, 0,
         "Consul's TLS certificate is not verified (CONSUL_HTTP_SSL_VERIFY)"),
        ("CONSUL_HTTP_TOKEN", {}, 1, "permission denied"),
    ],
    ids=["all", "no-server-name", "no-ca", "no-verify", "no-token"],
)
def test_go_consul_variables_reach_a_tls_agent(
    tmp_path: Path, make_confdir, run_confd, tls_files: TLSFiles, tls_double: ConsulDouble,
    drop: str | None, extra: dict[str, str], status: int, said: str | None,
) -> None:
    dest = tmp_path / "app.conf"
    confdir = make_confdir(
        {"app.tmpl": '{{ getv("/app/name") }}\n'},
        {"app.toml": f'[template]\nsrc = "app.tmpl"\ndest = "{dest}"\nkeys = ["/app"]\n'},
    )
    env = {
        "CONSUL_HTTP_ADDR": tls_double.address,
        "CONSUL_HTTP_SSL": "true",
        "CONSUL_CACERT": str(tls_files.ca),
        "CONSUL_CLIENT_CERT": str(tls_files.client_cert),
        "CONSUL_CLIENT_KEY": str(tls_files.client_key),
        "CONSUL_TLS_SERVER_NAME": "consul.test",
        "CONSUL_HTTP_TOKEN": TOKEN,
        **extra,
    }
    env.pop(drop or "", None)
    done = run_confd("--onetime", "--backend", "consul", "--confdir", str(confdir), env=env)
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert TOKEN not in output
    if said:
        assert output.count(said) == 1, output
    if status == 0:
        assert dest.read_text() == "over-tls\n"
    else:
        assert f"https://{tls_double.address}" in output and not dest.exists()
