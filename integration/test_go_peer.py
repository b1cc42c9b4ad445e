"""ZooKeeper and Vault give confd the keys Go confd reads from them.

Each expected map below is what Go confd 0.17 (kelseyhightower/confd, the peer binary) read from
the same server when this was written. confd's backend is always checked against it; when the
peer binary is found ($CONFD_GO_PEER, or shared/peer/confd-go beside the repository), Go confd
is run on the same data as well and must still agree, so the expectation cannot drift from Go.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from builtin.vault import VaultDatabase
from builtin.zookeeper import ZooKeeperDatabase
from integration.servers import ZooKeeperServer
from integration.vault_double import VaultDouble
from testsupport.peer import go_confd

# Prints every key up to four levels deep as key=value (Go templates have no "all keys").
DUMP = "".join(
    f'{{{{range gets "{"/*" * depth}"}}}}{{{{.Key}}}}={{{{.Value}}}}\n{{{{end}}}}'
    for depth in range(1, 5)
)


def go_confd_reads(tmp_path: Path, keys: list[str], flags: list[str]) -> dict[str, str] | None:
    """The keys Go confd reads for a resource with `keys` (None without the peer binary)."""
    binary = go_confd()
    if binary is None:
        return None
    confdir = tmp_path / "go-confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (confdir / "templates" / "dump.tmpl").write_text(DUMP)
    out = tmp_path / "go-dump"
    (confdir / "conf.d" / "dump.toml").write_text(
        f'[template]\nsrc = "dump.tmpl"\ndest = "{out}"\nkeys = {keys!r}\n'.replace("'", '"')
    )
    done = subprocess.run(
        [str(binary), "-onetime", "-confdir", str(confdir), *flags],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"Go confd failed:\n{done.stderr[-3000:]}"
    return dict(line.split("=", 1) for line in out.read_text().splitlines() if line)


# --- ZooKeeper ---------------------------------------------------------------------------------

ZK_TREE = {
    "/app/name": "inside",
    "/app/deep/x": "1",
    "/app/empty": "",
    "/application/name": "outside",
}
ZK_EXPECTED = {  # /app's own data is ignored: it has children
    "/app/name": "inside",
    "/app/deep/x": "1",
    "/app/empty": "",
}


@pytest.fixture(scope="module")
def zookeeper() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer() as server:
        client = KazooClient(hosts=server.address)
        client.start(10)
        for key, value in ZK_TREE.items():
            client.create(key, value.encode(), makepath=True)
        client.set("/app", b"data of a znode with children")
        client.stop()
        client.close()
        yield server


def test_zookeeper_reads_leaves_as_go_confd(zookeeper: ZooKeeperServer, tmp_path: Path) -> None:
    db = ZooKeeperDatabase()
    db.configure({"nodes": zookeeper.address})
    try:
        assert db.get_values(["/app"]) == ZK_EXPECTED
    finally:
        db.close()
    go = go_confd_reads(tmp_path, ["/app"], ["-backend", "zookeeper", "-node", zookeeper.address])
    assert go in (None, ZK_EXPECTED)


# --- Vault -------------------------------------------------------------------------------------

VAULT_EXPECTED = {
    "/key": "foobar",  # only a string field "value": the key's value
    "/upstream": '{"app1":"10.0.1.10:8080","app2":"10.0.1.11:8080"}',
    "/upstream/app1": "10.0.1.10:8080",
    "/upstream/app2": "10.0.1.11:8080",
    "/nested/east/app1": "10.0.1.10:8080",
    "/nested/west": '{"a/b":"slash","html":"\\u003c\\u0026\\u003e","n":5,"obj":{"k":"v"}}',
    "/nested/west/a/b": "slash",
    "/nested/west/html": "<&>",
    "/nested/west/obj/k": "v",  # the number n stays in the JSON only
}


@pytest.fixture(scope="module")
def vault() -> Iterator[VaultDouble]:
    with VaultDouble(root_token="root-token") as double:
        for mount in ("key", "upstream", "nested"):
            double.enable_kv(mount)
        double.put("/key", {"value": "foobar"})
        double.put("/upstream", {"app1": "10.0.1.10:8080", "app2": "10.0.1.11:8080"})
        double.put("/nested/east/app1", {"value": "10.0.1.10:8080"})
        double.put("/nested/west", {"n": 5, "obj": {"k": "v"}, "a/b": "slash", "html": "<&>"})
        double.add_login("approle", {"role_id": "role", "secret_id": "secret"}, mount="test")
        yield double


@pytest.mark.parametrize(
    ("settings", "flags"),
    [
        ({"auth_type": "token", "auth_token": "root-token"},
         ["-auth-type", "token", "-auth-token", "root-token"]),
        ({"auth_type": "app-role", "role_id": "role", "secret_id": "secret", "path": "test"},
         ["-auth-type", "app-role", "-role-id", "role", "-secret-id", "secret", "-path", "test"]),
    ],
)  # fmt: skip
def test_vault_reads_secrets_as_go_confd(
    vault: VaultDouble, tmp_path: Path, settings: dict[str, str], flags: list[str]
) -> None:
    keys = ["/key", "/upstream", "/nested"]
    db = VaultDatabase()
    db.configure({"nodes": vault.address, **settings})
    try:
        assert db.get_values(keys) == VAULT_EXPECTED
    finally:
        db.close()
    go = go_confd_reads(tmp_path, keys, ["-backend", "vault", "-node", vault.address, *flags])
    assert go in (None, VAULT_EXPECTED)
