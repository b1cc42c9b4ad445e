"""Go confd's dynamodb and ssm backends, run on the same moto data as ours: what each reads.

Go confd (`shared/peer/confd-go` beside the checkout, or `$CONFD_GO_PEER`) reaches moto
through `AwsTlsFront` (it has no endpoint setting). At debug level it logs the map a resource
read from the store; each row compares that map with what our backend returns for the same
keys, and names every way the two differ on purpose. Without the Go binary these tests are
skipped: they confirm what Go confd does, the backends' own tests pin ours.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from confd.backends.registry import default_registry
from integration.aws_tls_front import AwsTlsFront
from integration.servers import MotoServer
from testsupport.peer import go_confd

GO_CONFD = go_confd() or Path("/nonexistent/confd-go")
pytestmark = pytest.mark.skipif(
    not GO_CONFD.exists(),
    reason="Go confd is not on this machine (shared/peer/confd-go, $CONFD_GO_PEER)",
)
_MAP = re.compile(r"Got the following map from store: map\[(.*)\]$", re.M)


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    moto_server.reset()
    for name in list(os.environ):
        if name.startswith(("AWS_", "DYNAMODB_", "SSM_")):
            monkeypatch.delenv(name)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    yield moto_server


def go_read(server: MotoServer, tmp_path: Path, keys: list[str], *args: str
            ) -> tuple[subprocess.CompletedProcess[str], dict[str, str] | None]:
    """Run Go confd once on a resource reading `keys`: (the run, the map it read or None)."""
    confdir = tmp_path / "go-confdir"
    (confdir / "conf.d").mkdir(parents=True, exist_ok=True)
    (confdir / "templates").mkdir(exist_ok=True)
    (confdir / "templates" / "t.tmpl").write_text("static\n")
    quoted = ", ".join(f'"{k}"' for k in keys)
    (confdir / "conf.d" / "t.toml").write_text(
        f'[template]\nsrc = "t.tmpl"\ndest = "{tmp_path}/go.out"\nkeys = [{quoted}]\n'
    )
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CONFD_", "HTTPS_PROXY", "https_proxy", "NO_PROXY"))}
    with AwsTlsFront(server.port) as front:
        env = {**base, **front.env(), "AWS_REGION": server.region,
               "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
        done = subprocess.run(
            [str(GO_CONFD), "-onetime", "-log-level", "debug", "-confdir", str(confdir), *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    found = _MAP.search(done.stderr)
    if found is None:
        return done, None
    # Go prints map[k1:v1 k2:v2]: keys hold no ':' and these tests' values no space.
    pairs = [item.split(":", 1) for item in found.group(1).split(" ") if item]
    return done, {key: value for key, value in pairs}


def ours(backend: str, keys: list[str], **settings: str) -> dict[str, str]:
    database = default_registry().create(backend, settings)
    try:
        return database.get_values(keys)
    finally:
        database.close()


def fill_table(server: MotoServer, items: dict[str, dict]) -> None:
    client = server.client("dynamodb")
    client.create_table(
        TableName="confd",
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for key, value in items.items():
        client.put_item(TableName="confd", Item={"key": {"S": key}, "value": value})


DYNAMO = ["-backend", "dynamodb", "-table", "confd"]


def test_dynamodb_same_reads_for_a_directory_of_string_items(aws: MotoServer, tmp_path) -> None:
    fill_table(aws, {"/upstream/app1": {"S": "10.0.1.10:8080"},
                     "/upstream/app2": {"S": "10.0.1.11:8080"},
                     "/upstream/broken": {"N": "4711"}})  # fmt: skip
    done, go = go_read(aws, tmp_path, ["/upstream"], *DYNAMO)
    assert go == ours("dynamodb", ["/upstream"], table="confd") == {
        "/upstream/app1": "10.0.1.10:8080", "/upstream/app2": "10.0.1.11:8080",
    }, done.stderr  # fmt: skip
    assert "Skipping key '/upstream/broken'" in done.stderr  # both skip it with a warning


def test_dynamodb_differences_prefix_and_exact_item(aws: MotoServer, tmp_path) -> None:
    fill_table(aws, {"/app/name": {"S": "inside"}, "/application/name": {"S": "outside"}})
    _, go = go_read(aws, tmp_path, ["/app"], *DYNAMO)
    assert go == {"/app/name": "inside", "/application/name": "outside"}  # string prefix
    assert ours("dynamodb", ["/app"], table="confd") == {"/app/name": "inside"}
    aws.client("dynamodb").put_item(
        TableName="confd", Item={"key": {"S": "/app"}, "value": {"S": "top"}}
    )
    _, go = go_read(aws, tmp_path, ["/app"], *DYNAMO)
    assert go == {"/app": "top"}  # an item named as the key hides everything below it
    assert ours("dynamodb", ["/app"], table="confd") == {"/app": "top", "/app/name": "inside"}


def test_dynamodb_difference_go_reads_only_the_first_scan_page(aws: MotoServer, tmp_path) -> None:
    fill_table(aws, {f"/big/{i:02d}": {"S": "x" * 100_000} for i in range(15)})
    _, go = go_read(aws, tmp_path, ["/big"], *DYNAMO)
    assert go is not None and 0 < len(go) < 15
    assert len(ours("dynamodb", ["/big"], table="confd")) == 15


def test_dynamodb_missing_table_and_watch_stop_go_confd(aws: MotoServer, tmp_path) -> None:
    done, _ = go_read(aws, tmp_path, ["/app"], "-backend", "dynamodb", "-table", "nosuch")
    assert done.returncode == 1
    assert "ResourceNotFoundException" in done.stderr and "nosuch" in done.stderr
    fill_table(aws, {})
    done, _ = go_read(aws, tmp_path, ["/app"], *DYNAMO, "-watch")
    assert done.returncode == 1
    assert "Watch is not supported for backend dynamodb" in done.stderr


def test_ssm_same_reads_below_a_key_and_of_an_exact_key(aws: MotoServer, tmp_path) -> None:
    client = aws.client("ssm")
    for name, value, kind in [
        ("/app/name", "inside", "String"), ("/app/secret", "s3cr3t", "SecureString"),
        ("/app/list", "a,b,c", "StringList"), ("/application/name", "outside", "String"),
        ("/exact", "only", "String"),
    ] + [(f"/many/k{i:02d}", str(i), "String") for i in range(25)]:  # fmt: skip
        client.put_parameter(Name=name, Value=value, Type=kind)
    keys = ["/app", "/exact", "/many", "/missing"]
    done, go = go_read(aws, tmp_path, keys, "-backend", "ssm")
    assert go is not None, done.stderr
    assert go == ours("ssm", keys)
    assert go["/app/secret"] == "s3cr3t" and go["/app/list"] == "a,b,c" and len(go) == 29


def test_ssm_difference_a_parameter_named_as_the_key_and_below(aws: MotoServer, tmp_path) -> None:
    client = aws.client("ssm")
    client.put_parameter(Name="/app", Value="top", Type="String")
    client.put_parameter(Name="/app/name", Value="inside", Type="String")
    _, go = go_read(aws, tmp_path, ["/app"], "-backend", "ssm")
    assert go == {"/app/name": "inside"}  # GetParameter only when nothing lies below
    assert ours("ssm", ["/app"]) == {"/app": "top", "/app/name": "inside"}
