"""Vault backend against the Vault double (integration/vault_double.py): Go confd's key layout,
KV v1 and v2, every auth type, Vault's environment variables, token renewal, and errors that
name the backend and cause without a secret in them."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from builtin.vault import VaultDatabase
from integration.servers import free_port
from integration.vault_double import VaultDouble
from plugin_sdk.database import DatabaseError, WatchUnsupported

ROOT = "root-token"
VAULT_VARIABLES = ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_CACERT", "VAULT_CAPATH",
                   "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_SKIP_VERIFY")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VAULT_* variable of the machine running the tests leaks into them."""
    for name in VAULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def double() -> Iterator[VaultDouble]:
    with VaultDouble(root_token=ROOT) as vault:
        yield vault


@pytest.fixture
def vault(double: VaultDouble) -> VaultDouble:
    """The double with an empty KV v1 at secret/ and a KV v2 at kv2/."""
    double.clear()
    double.logins.clear()
    double.requests.clear()
    double.enable_kv("secret", 1)
    double.enable_kv("kv2", 2)
    return double


def open_db(vault: VaultDouble, **settings: str) -> VaultDatabase:
    db = VaultDatabase()
    db.configure({"nodes": vault.address, **settings})
    return db


@pytest.fixture
def root_db(vault: VaultDouble) -> Iterator[VaultDatabase]:
    db = open_db(vault, auth_type="token", auth_token=ROOT)
    yield db
    db.close()


# --- Go confd's key layout ---------------------------------------------------------------------


def test_a_secret_holding_only_value_is_that_value(vault, root_db) -> None:
    vault.put("/secret/db/host", {"value": "10.0.0.1"})
    assert root_db.get_values(["/secret/db"]) == {"/secret/db/host": "10.0.0.1"}


def test_other_secrets_are_their_json_and_each_string_field_below(vault, root_db) -> None:
    vault.put("/secret/app", {
        "user": "x", "value": "v", "db": {"port": "5432", "tls": {"on": "1"}},
    })
    assert root_db.get_values(["/secret/app"]) == {
        "/secret/app": '{"db":{"port":"5432","tls":{"on":"1"}},"user":"x","value":"v"}',
        "/secret/app/user": "x",
        "/secret/app/value": "v",
        "/secret/app/db/port": "5432",
        "/secret/app/db/tls/on": "1",
    }


def test_json_is_written_as_go_writes_it(vault, root_db) -> None:
    vault.put("/secret/html", {"b": "<a href='x'>&</a>", "a": "é\u2028"})
    assert root_db.get_values(["/secret/html"])["/secret/html"] == (
        '{"a":"é\\u2028","b":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"}'
    )


def test_non_string_fields_stay_in_the_json_with_a_warning(vault, root_db, caplog) -> None:
    vault.put("/secret/mixed", {"n": 5, "ok": True, "list": [1], "none": None, "s": "str"})
    with caplog.at_level(logging.WARNING, logger="confd.backends.vault"):
        values = root_db.get_values(["/secret/mixed"])
    assert values == {
        "/secret/mixed": '{"list":[1],"n":5,"none":null,"ok":true,"s":"str"}',
        "/secret/mixed/s": "str",
    }
    assert "/secret/mixed/n: a number is not a key value" in caplog.text
    assert "5" not in caplog.text.replace("/secret/mixed", "")


def test_field_names_with_slashes_nest_as_go_path_join_does(vault, root_db) -> None:
    vault.put("/secret/odd", {"a/b": "1", "x": "2"})
    values = root_db.get_values(["/secret/odd"])
    assert values["/secret/odd/a/b"] == "1"


def test_folders_are_walked_recursively_and_prefixes_are_paths(vault, root_db) -> None:
    vault.put("/secret/app/name", {"value": "inside"})
    vault.put("/secret/app/deep/er/x", {"value": "1"})
    vault.put("/secret/app/deep", {"value": "both a secret and a folder"})
    vault.put("/secret/application/name", {"value": "outside"})
    assert root_db.get_values(["/secret/app/*"]) == {
        "/secret/app/name": "inside",
        "/secret/app/deep": "both a secret and a folder",
        "/secret/app/deep/er/x": "1",
    }


def test_a_secret_at_a_mount_root_is_the_mount_key(vault, root_db) -> None:
    vault.enable_kv("key")
    vault.put("/key", {"value": "foobar"})
    assert root_db.get_values(["/key"]) == {"/key": "foobar"}


def test_missing_keys_and_mounts_give_nothing(vault, root_db) -> None:
    vault.put("/secret/a", {"value": "1"})
    assert root_db.get_values(["/secret/missing", "/nomount/x"]) == {}


def test_root_key_is_refused_naming_the_reason(root_db) -> None:
    with pytest.raises(DatabaseError, match="key '/' names no secrets engine"):
        root_db.get_values(["/"])


def test_kv2_is_read_through_data_and_metadata_with_keys_as_in_v1(vault, root_db) -> None:
    vault.put("/kv2/app/db", {"value": "pg"})
    vault.put("/kv2/app/svc", {"user": "u", "pass": "p"})
    vault.put("/kv2/other", {"value": "o"})
    assert root_db.get_values(["/kv2/app"]) == {
        "/kv2/app/db": "pg",
        "/kv2/app/svc": '{"pass":"p","user":"u"}',
        "/kv2/app/svc/pass": "p",
        "/kv2/app/svc/user": "u",
    }
    assert vault.count("GET", "kv2/data/app/svc") == 1
    assert vault.count("LIST", "kv2/metadata/app") == 1
    assert root_db.get_values(["/kv2"])["/kv2/other"] == "o"


def test_kv2_soft_deleted_secret_gives_nothing(vault, root_db) -> None:
    vault.put("/kv2/gone", {"value": "x"})
    vault.delete("/kv2/gone")
    assert root_db.get_values(["/kv2"]) == {}


def test_kv2_mount_with_several_segments(vault, root_db) -> None:
    vault.enable_kv("team/kv", 2)
    vault.put("/team/kv/app", {"value": "deep mount"})
    assert root_db.get_values(["/team/kv"]) == {"/team/kv/app": "deep mount"}
    assert vault.count("GET", "team/kv/data/app") == 1


def test_watch_is_unsupported_so_the_daemon_polls(root_db) -> None:
    with pytest.raises(WatchUnsupported):
        next(iter(root_db.watch_prefix("/secret", ["/secret"], threading.Event())))


# --- auth types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "login", "settings"),
    [
        ("approle", {"role_id": "r1", "secret_id": "s3cr3t-id"},
         {"auth_type": "approle", "role_id": "r1", "secret_id": "s3cr3t-id"}),
        ("approle", {"role_id": "r1", "secret_id": "s3cr3t-id"},
         {"auth_type": "app-role", "role_id": "r1", "secret_id": "s3cr3t-id"}),
        ("app-id", {"app_id": "a1", "user_id": "u-s3cr3t"},
         {"auth_type": "app-id", "app_id": "a1", "user_id": "u-s3cr3t"}),
        ("github", {"token": "gh-s3cr3t"}, {"auth_type": "github", "auth_token": "gh-s3cr3t"}),
        ("userpass", {"alice": "pa55-s3cr3t"},
         {"auth_type": "userpass", "username": "alice", "password": "pa55-s3cr3t"}),
    ],
)  # fmt: skip
def test_login_auth_types_read_with_their_token(vault, kind, login, settings) -> None:
    vault.add_login(kind, login)
    vault.put("/secret/x", {"value": "1"})
    db = open_db(vault, **settings)
    try:
        assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
    finally:
        db.close()
    mount = "approle" if kind == "approle" else kind
    logins = [p for m, p in vault.requests if p.startswith(f"auth/{mount}/login")]
    assert len(logins) == 1


@pytest.mark.parametrize(
    ("kind", "login", "settings", "cause"),
    [
        ("approle", {"role_id": "r1", "secret_id": "right"},
         {"auth_type": "approle", "role_id": "r1", "secret_id": "wrong-s3cr3t"},
         "invalid role or secret ID"),
        ("userpass", {"alice": "right"},
         {"auth_type": "userpass", "username": "alice", "password": "wrong-s3cr3t"},
         "invalid username or password"),
        ("github", {"token": "right"}, {"auth_type": "github", "auth_token": "wrong-s3cr3t"},
         "user is not part of required org"),
        ("app-id", {"app_id": "a", "user_id": "right"},
         {"auth_type": "app-id", "app_id": "a", "user_id": "wrong-s3cr3t"},
         "invalid user ID or app ID"),
    ],
)  # fmt: skip
def test_bad_credentials_are_one_clear_error_without_the_secret(
    vault, kind, login, settings, cause
) -> None:
    vault.add_login(kind, login)
    db = open_db(vault, **settings)
    with pytest.raises(DatabaseError) as caught:
        db.get_values(["/secret/x"])
    message = str(caught.value)
    assert message.startswith(f"backend 'vault': login with auth_type '{kind}'"), message
    assert cause in message
    assert "s3cr3t" not in message
    db.close()


def test_bad_token_is_a_clear_error_without_the_token(vault) -> None:
    db = open_db(vault, auth_token="not-a-s3cr3t-token")
    with pytest.raises(DatabaseError) as caught:
        db.get_values(["/secret/x"])
    assert str(caught.value) == (
        "backend 'vault': looking up the token failed: permission denied"
    )
    db.close()


def test_auth_path_setting_moves_the_login(vault) -> None:
    vault.add_login("approle", {"role_id": "r", "secret_id": "s"}, mount="test")
    vault.put("/secret/x", {"value": "1"})
    db = open_db(vault, auth_type="app-role", role_id="r", secret_id="s", path="test")
    assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
    assert vault.count("POST", "auth/test/login") == 1
    db.close()


def test_kubernetes_logs_in_with_the_service_account_token(vault, tmp_path) -> None:
    jwt = tmp_path / "token"
    jwt.write_text("eyJ.k8s-s3cr3t.jwt\n")
    vault.add_login("kubernetes", {"role": "web", "jwt": "eyJ.k8s-s3cr3t.jwt"})
    vault.put("/secret/x", {"value": "1"})
    db = open_db(vault, auth_type="kubernetes", role_id="web", kubernetes_token_path=str(jwt))
    assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
    db.close()
    db = open_db(vault, auth_type="kubernetes", role_id="api", kubernetes_token_path=str(jwt))
    with pytest.raises(DatabaseError, match="permission denied") as caught:
        db.get_values(["/secret/x"])
    assert "s3cr3t" not in str(caught.value)
    db.close()


def test_kubernetes_without_a_token_file_names_the_file(vault, tmp_path) -> None:
    missing = tmp_path / "nope"
    db = open_db(vault, auth_type="kubernetes", role_id="web", kubernetes_token_path=str(missing))
    with pytest.raises(DatabaseError, match=f"cannot read the service account token {missing}"):
        db.get_values(["/secret/x"])
    db.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth_type": "ldap"}, "unknown auth_type 'ldap' (one of: app-id, app-role, approle, "
                                "cert, github, kubernetes, token, userpass)"),
        ({"auth_type": "approle", "role_id": "r"},
         "auth_type 'approle' needs setting 'secret_id' (Go confd: -role-id, -secret-id)"),
        ({"auth_type": "userpass", "username": "u"}, "needs setting 'password'"),
        ({"auth_type": "app-id"}, "needs setting 'app_id', 'user_id'"),
        ({"auth_type": "kubernetes"}, "needs setting 'role_id'"),
        ({"auth_type": "cert"}, "needs setting 'client_cert', 'client_key'"),
        ({}, "auth_type 'token' needs setting 'auth_token' (or VAULT_TOKEN)"),
        ({"auth_token": "t", "client_cert": "/c.pem"},
         "'client_cert' and 'client_key' go together"),
        ({"auth_token": "t", "nodes": "ftp://vault"}, "node 'ftp://vault' is not http(s)"),
        ({"auth_token": "t", "nodes": "vault:port"}, "node 'vault:port' has a bad port"),
        ({"auth_token": "t", "client_ca_keys": "/nonexistent/ca.pem"},
         "setting 'client_ca_keys': cannot read /nonexistent/ca.pem"),
        ({"auth_tokn": "t"}, "backend 'vault' has no setting 'auth_tokn'"),
        ({"auth_token": "t", "client_insecure": "maybe"}, "'client_insecure' must be bool"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_setting(settings, message) -> None:
    with pytest.raises(DatabaseError) as caught:
        VaultDatabase().configure(settings)
    assert message in str(caught.value)


def test_secret_settings_are_marked_secret() -> None:
    secret = {s.name for s in VaultDatabase.settings if s.secret}
    assert secret == {"auth_token", "secret_id", "user_id", "password"}


# --- environment -------------------------------------------------------------------------------


def test_vault_addr_and_token_apply_when_unset(vault, monkeypatch) -> None:
    vault.put("/secret/x", {"value": "from env"})
    monkeypatch.setenv("VAULT_ADDR", vault.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT)
    db = VaultDatabase()
    db.configure({})
    assert db.get_values(["/secret/x"]) == {"/secret/x": "from env"}
    db.close()


def test_explicit_settings_win_and_empty_ones_count_as_unset(vault, monkeypatch) -> None:
    vault.put("/secret/x", {"value": "1"})
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{free_port()}")  # nothing there
    monkeypatch.setenv("VAULT_TOKEN", "env-token-not-valid")
    db = VaultDatabase()
    db.configure({"nodes": vault.address, "auth_token": ROOT})
    assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
    db.close()
    monkeypatch.setenv("VAULT_ADDR", vault.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT)
    db = VaultDatabase()
    db.configure({"nodes": "", "auth_token": ""})  # as a flag left empty
    assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
    db.close()


def test_empty_environment_variables_are_ignored(monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "")
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "")
    db = VaultDatabase()
    db.configure({"auth_token": "t"})
    assert db._urls == ["http://127.0.0.1:8200"]  # Go confd's default node
    assert db.options["client_insecure"] is False


def test_vault_token_is_only_a_token_for_auth_type_token(monkeypatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "a-vault-token")
    with pytest.raises(DatabaseError, match="auth_type 'github' needs setting 'auth_token'"):
        VaultDatabase().configure({"auth_type": "github"})


# --- TLS and the cert auth type ----------------------------------------------------------------


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool, server: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ]), critical=False)  # fmt: skip
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    base = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", None, None, ca_key, ca=True, server=False)
    files: dict[str, str] = {}
    for name, key, cert in [("ca", ca_key, ca)] + [
        (n, k, _cert(n, ca_key, ca.subject, k, ca=False, server=n == "server"))
        for n, k in (("server", ec.generate_private_key(ec.SECP256R1())),
                     ("client", ec.generate_private_key(ec.SECP256R1())))
    ]:  # fmt: skip
        Path(base / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        Path(base / f"{name}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))  # fmt: skip
        files[name], files[f"{name}_key"] = str(base / f"{name}.pem"), str(base / f"{name}-key.pem")
    return files


@pytest.fixture
def tls_vault(pki) -> Iterator[VaultDouble]:
    with VaultDouble(root_token=ROOT, tls=(pki["server"], pki["server_key"], pki["ca"])) as v:
        v.enable_kv("secret")
        v.put("/secret/x", {"value": "over tls"})
        v.add_login("cert", {})
        yield v


def test_cert_auth_logs_in_with_the_client_certificate(tls_vault, pki) -> None:
    db = open_db(tls_vault, auth_type="cert", client_cert=pki["client"],
                 client_key=pki["client_key"], client_ca_keys=pki["ca"])  # fmt: skip
    assert db.get_values(["/secret/x"]) == {"/secret/x": "over tls"}
    assert tls_vault.count("POST", "auth/cert/login") == 1
    db.close()


def test_tls_settings_come_from_vaults_variables(tls_vault, pki, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_CACERT", pki["ca"])
    monkeypatch.setenv("VAULT_CLIENT_CERT", pki["client"])
    monkeypatch.setenv("VAULT_CLIENT_KEY", pki["client_key"])
    db = open_db(tls_vault, auth_type="cert")
    assert db.get_values(["/secret/x"]) == {"/secret/x": "over tls"}
    db.close()


def test_unverified_server_is_a_tls_error_unless_insecure(tls_vault, pki, monkeypatch) -> None:
    db = open_db(tls_vault, auth_token=ROOT)
    with pytest.raises(DatabaseError, match="TLS error: .*certificate verify failed") as caught:
        db.get_values(["/secret/x"])
    assert tls_vault.address in str(caught.value)
    db.close()
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "true")
    db = open_db(tls_vault, auth_token=ROOT)
    assert db.get_values(["/secret/x"]) == {"/secret/x": "over tls"}
    db.close()


# --- token lifetime ----------------------------------------------------------------------------


def test_renewable_login_token_is_renewed_before_it_expires(vault) -> None:
    vault.add_login("approle", {"role_id": "r", "secret_id": "s"}, ttl=2)
    vault.put("/secret/x", {"value": "1"})
    db = open_db(vault, auth_type="approle", role_id="r", secret_id="s")
    try:
        assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
        time.sleep(3)  # past the first TTL: only a renewal keeps the token alive
        assert vault.count("POST", "auth/token/renew-self") >= 1
        assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
        assert vault.count("POST", "auth/approle/login") == 1  # renewed, not replaced
    finally:
        db.close()


def test_renewable_token_of_auth_type_token_is_renewed(vault) -> None:
    token = vault.issue_token(ttl=2, renewable=True)
    vault.put("/secret/x", {"value": "1"})
    db = open_db(vault, auth_token=token)
    try:
        db.get_values(["/secret/x"])
        time.sleep(3)
        assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
        assert vault.count("POST", "auth/token/renew-self") >= 1
    finally:
        db.close()


def test_rejected_login_token_is_replaced_by_a_new_login(vault) -> None:
    vault.add_login("userpass", {"bob": "pw"})
    vault.put("/secret/x", {"value": "1"})
    db = open_db(vault, auth_type="userpass", username="bob", password="pw")
    try:
        db.get_values(["/secret/x"])
        vault.revoke(db._token)  # type: ignore[arg-type]
        assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
        assert vault.count("POST", "auth/userpass/login/bob") == 2
    finally:
        db.close()


def test_token_without_read_permission_is_a_clear_error(vault) -> None:
    vault.put("/secret/x", {"value": "1"})
    token = vault.issue_token(allowed=("other/",))
    db = open_db(vault, auth_token=token)
    with pytest.raises(DatabaseError) as caught:
        db.get_values(["/secret/x"])
    assert str(caught.value) == (
        "backend 'vault': reading '/secret/x': permission denied (check the token's policy)"
    )
    db.close()


# --- nodes -------------------------------------------------------------------------------------


def test_unreachable_server_is_one_clear_error_naming_the_node() -> None:
    node = f"http://127.0.0.1:{free_port()}"
    db = VaultDatabase()
    db.configure({"nodes": node, "auth_token": "a-s3cr3t"})
    with pytest.raises(DatabaseError) as caught:
        db.get_values(["/secret/x"])
    assert str(caught.value) == (
        f"backend 'vault': looking up the token: no node answered ({node}: ConnectionError)"
    )
    db.close()


def test_nodes_are_tried_in_order(vault) -> None:
    vault.put("/secret/x", {"value": "1"})
    down = f"127.0.0.1:{free_port()}"
    db = open_db(vault, auth_token=ROOT, nodes=f"{down},{vault.address}")
    assert db.get_values(["/secret/x"]) == {"/secret/x": "1"}
    db.close()


# --- packaging and logs ------------------------------------------------------------------------


def test_missing_hvac_names_the_install_command(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "hvac", None)  # `import hvac` now raises ImportError
    with pytest.raises(DatabaseError) as caught:
        VaultDatabase().configure({"auth_token": "t"})
    assert str(caught.value) == (
        "backend 'vault' needs the hvac package: pip install 'confd-py[vault]'"
    )


def test_no_secret_reaches_the_logs(vault, caplog) -> None:
    secrets = {"pa55-s3cr3t", "wrong-s3cr3t"}
    vault.add_login("userpass", {"bob": "pa55-s3cr3t"}, ttl=1)
    vault.put("/secret/x", {"value": "1", "n": 2})
    with caplog.at_level(logging.DEBUG):
        db = open_db(vault, auth_type="userpass", username="bob", password="pa55-s3cr3t")
        db.get_values(["/secret"])
        time.sleep(1.2)  # a renewal, which near the maximum TTL logs in again
        db.get_values(["/secret"])
        secrets.add(db._token)  # type: ignore[arg-type]
        db.close()
        bad = open_db(vault, auth_type="userpass", username="bob", password="wrong-s3cr3t")
        with pytest.raises(DatabaseError):
            bad.get_values(["/secret"])
        bad.close()
    assert vault.count("POST", "auth/token/renew-self") >= 1
    assert "confd.backends.vault" in {r.name for r in caplog.records}
    leaked = [s for s in secrets if s in caplog.text]
    assert leaked == [], caplog.text
