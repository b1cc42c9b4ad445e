"""One adapter per backend the suite runs through: fill the store, change it, select it on the CLI.

Every adapter offers `load(data)` (replace the whole store), `set(key, value)`, `delete(key)`,
`args()` (the confd flags selecting it) and `env()` (variables confd needs). Adding a backend to
the suite is adding an adapter here and its name to `STORES`, and to `WATCHABLE` (its values can
change under a running confd), `SERVERS` (behind a server the fault tests stop and restart) and
`NATIVE_WATCH` (it has a `watch_prefix` of its own, not polling) as they apply.

Backends that can only be polled (the AWS ones, IMDS) run the watch cases too: their `args()`
carry `--interval 1`, so `confd --watch` polls them every second (with its one warning) and a
change shows up as it would for a watched store, only later.
"""

from __future__ import annotations

import contextlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import redis
import yaml
from kazoo.client import KazooClient
from pyetcd import etcdrpc

from integration.consul_double import ConsulDouble
from integration.imds_double import ImdsDouble
from integration.servers import EtcdServer, MotoServer, RedisServer, ZooKeeperServer
from integration.vault_double import VaultDouble

__all__ = [
    "NATIVE_WATCH",
    "SERVERS",
    "STORES",
    "WATCHABLE",
    "ConsulStore",
    "DynamoDBStore",
    "EnvStore",
    "EtcdStore",
    "FileStore",
    "ImdsStore",
    "RedisStore",
    "SSMStore",
    "SecretsManagerStore",
    "Store",
    "VaultStore",
    "ZooKeeperStore",
]

POLLED = ["dynamodb", "ssm", "secretsmanager", "imds"]  # no watch: the daemon polls them
STORES = ["env", "file", "etcd", "consul", "redis", "zookeeper", "vault", *POLLED]
# env: values are fixed when confd starts; vault and the POLLED ones are polled
WATCHABLE = ["file", "etcd", "consul", "redis", "zookeeper", "vault", *POLLED]
SERVERS = ["etcd", "consul", "redis", "zookeeper", "vault"]  # behind a server that can go down
NATIVE_WATCH = ["etcd", "consul", "redis", "zookeeper"]  # servers with a watch of their own
POLL = ["--interval", "1"]


class Store(ABC):
    """A key/value store confd can read, as the tests see it."""

    name: str
    watchable = True  # False: values are fixed when confd starts (env)

    @abstractmethod
    def load(self, data: dict[str, str]) -> None:
        """Make the store hold exactly `data`."""

    @abstractmethod
    def set(self, key: str, value: str) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def args(self) -> list[str]:
        """The confd flags that select and reach this store."""

    def env(self) -> dict[str, str]:
        return {}


class EnvStore(Store):
    """Keys as environment variables of the confd process (`/db/host` is `DB_HOST`)."""

    name = "env"
    watchable = False

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    @staticmethod
    def variable(key: str) -> str:
        return key.strip("/").upper().replace("/", "_")

    def load(self, data: dict[str, str]) -> None:
        self.data = dict(data)

    def set(self, key: str, value: str) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def args(self) -> list[str]:
        return ["--backend", "env"]

    def env(self) -> dict[str, str]:
        return {self.variable(k): v for k, v in self.data.items()}


class FileStore(Store):
    """Keys as a nested YAML document (`/db/host` is `db: {host: ...}`), rewritten atomically."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "store.yaml"
        self.data: dict[str, str] = {}

    def _write(self) -> None:
        tree: dict[str, Any] = {}
        for key, value in sorted(self.data.items()):
            *parents, leaf = key.strip("/").split("/")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        staged = self.path.with_suffix(".tmp")
        staged.write_text(yaml.safe_dump(tree, default_style='"'))
        os.replace(staged, self.path)

    def load(self, data: dict[str, str]) -> None:
        self.data = dict(data)
        self._write()

    def set(self, key: str, value: str) -> None:
        self.data[key] = value
        self._write()

    def delete(self, key: str) -> None:
        self.data.pop(key, None)
        self._write()

    def args(self) -> list[str]:
        return ["--backend", "file", "--file", str(self.path)]


class EtcdStore(Store):
    """A real etcd server, written through its gRPC KV API."""

    name = "etcd"

    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self._channel: grpc.Channel | None = None

    @property
    def _kv(self) -> Any:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        return etcdrpc.KVStub(self._channel)

    def load(self, data: dict[str, str]) -> None:
        self._kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
        for key, value in data.items():
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self._kv.Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()), timeout=10)

    def delete(self, key: str) -> None:
        self._kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=key.encode()), timeout=10)

    def args(self) -> list[str]:
        return ["--backend", "etcd", "--node", self.server.url]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class ConsulStore(Store):
    """The Consul KV double; keys are stored without the leading `/`, as Consul clients do."""

    name = "consul"

    def __init__(self, double: ConsulDouble) -> None:
        self.double = double

    def load(self, data: dict[str, str]) -> None:
        self.double.clear()
        for key, value in data.items():
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self.double.put(key.lstrip("/"), value)

    def delete(self, key: str) -> None:
        self.double.delete(key.lstrip("/"))

    def args(self) -> list[str]:
        return ["--backend", "consul", "--node", self.double.address]


class RedisStore(Store):
    """A real Redis server; confd's keys are Redis string keys as-is (`/db/host`)."""

    name = "redis"

    def __init__(self, server: RedisServer) -> None:
        self.server = server

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, decode_responses=True, socket_timeout=10)

    def load(self, data: dict[str, str]) -> None:
        with self.client as client:
            client.flushdb()
            if data:
                client.mset(data)

    def set(self, key: str, value: str) -> None:
        with self.client as client:
            client.set(key, value)

    def delete(self, key: str) -> None:
        with self.client as client:
            client.delete(key)

    def args(self) -> list[str]:
        return ["--backend", "redis", "--node", f"127.0.0.1:{self.server.port}"]


class ZooKeeperStore(Store):
    """A real ZooKeeper server; each key is a znode (parents created empty, as `makepath`)."""

    name = "zookeeper"

    def __init__(self, server: ZooKeeperServer) -> None:
        self.server = server

    @contextlib.contextmanager
    def client(self) -> Iterator[KazooClient]:
        """A client for one change: the server may have been restarted since the last one."""
        client = KazooClient(hosts=self.server.address, timeout=10)
        client.start(timeout=10)
        try:
            yield client
        finally:
            client.stop()
            client.close()

    def load(self, data: dict[str, str]) -> None:
        with self.client() as client:
            for child in client.get_children("/"):
                if child != "zookeeper":
                    client.delete(f"/{child}", recursive=True)
            for key, value in data.items():
                client.create(key, value.encode(), makepath=True)

    def set(self, key: str, value: str) -> None:
        with self.client() as client:
            if client.exists(key):
                client.set(key, value.encode())
            else:
                client.create(key, value.encode(), makepath=True)

    def delete(self, key: str) -> None:
        with self.client() as client:
            if client.exists(key):
                client.delete(key, recursive=True)

    def args(self) -> list[str]:
        return ["--backend", "zookeeper", "--node", self.server.address]


class VaultStore(Store):
    """The Vault double, laid out as Go confd's Vault integration test does: a KV v1 engine
    mounted at each key's first segment, each key a secret holding `{"value": ...}` (so Go
    confd's rule gives the key that value). confd logs in with the token from VAULT_TOKEN and,
    Vault having no watch, polls every second under --watch."""

    name = "vault"

    def __init__(self, double: VaultDouble) -> None:
        self.double = double

    def _mount(self, key: str) -> None:
        mount = key.strip("/").split("/")[0] + "/"
        if mount not in self.double.mounts:
            self.double.enable_kv(mount)

    def load(self, data: dict[str, str]) -> None:
        self.double.clear()
        for key, value in data.items():
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self._mount(key)
        self.double.put(key, {"value": value})

    def delete(self, key: str) -> None:
        self._mount(key)
        self.double.delete(key)

    def args(self) -> list[str]:
        return ["--backend", "vault", "--node", self.double.address,
                "--backend-opt", "auth_type=token", "--interval", "1"]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {"VAULT_TOKEN": self.double.root_token}


class DynamoDBStore(Store):
    """A DynamoDB table in moto, in Go confd's layout: one item per key, `key` and `value`."""

    name = "dynamodb"
    table = "confd"

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.client = server.client("dynamodb")

    def load(self, data: dict[str, str]) -> None:
        existing = self.client.list_tables()["TableNames"]
        if self.table in existing:
            self.client.delete_table(TableName=self.table)
        self.client.create_table(
            TableName=self.table,
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for key, value in data.items():
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self.client.put_item(
            TableName=self.table, Item={"key": {"S": key}, "value": {"S": value}}
        )

    def delete(self, key: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"key": {"S": key}})

    def args(self) -> list[str]:
        return ["--backend", "dynamodb", "--backend-opt", f"table={self.table}", *POLL]

    def env(self) -> dict[str, str]:
        return self.server.env()


class SSMStore(Store):
    """Parameters in moto's Parameter Store, named as confd's keys (`/db/host`)."""

    name = "ssm"

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.client = server.client("ssm")

    def load(self, data: dict[str, str]) -> None:
        names = [
            p["Name"]
            for page in self.client.get_paginator("describe_parameters").paginate()
            for p in page["Parameters"]
        ]
        for start in range(0, len(names), 10):
            self.client.delete_parameters(Names=names[start : start + 10])
        for key, value in data.items():
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self.client.put_parameter(Name=key, Value=value, Type="SecureString", Overwrite=True)

    def delete(self, key: str) -> None:
        self.client.delete_parameter(Name=key)

    def args(self) -> list[str]:
        return ["--backend", "ssm", *POLL]

    def env(self) -> dict[str, str]:
        return self.server.env()


class SecretsManagerStore(Store):
    """Secrets in moto's Secrets Manager, laid out as the fork's users lay them out: one JSON
    secret per thing a resource reads (`database` = `{"host": ..., "port": ...}`), whose fields
    the backend flattens into keys; a key outside those groups is a plain secret of its name."""

    name = "secretsmanager"
    # Key directories the shared resources read, innermost first: each is one JSON secret.
    GROUPS = ("/prefix/database", "/prefix/upstream", "/database", "/upstream", "/nested",
              "/application", "/app")  # fmt: skip

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.client = server.client("secretsmanager")
        self.data: dict[str, str] = {}

    def _place(self, key: str) -> tuple[str, str | None]:
        """(secret name, JSON field or None for a plain secret) holding `key`."""
        for group in self.GROUPS:
            if key.startswith(group + "/"):
                return group.lstrip("/"), key[len(group) + 1 :]
        return key.lstrip("/"), None

    def _put(self, name: str, text: str | None) -> None:
        if text is None:
            with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):
                self.client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            return
        try:
            self.client.put_secret_value(SecretId=name, SecretString=text)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_secret(Name=name, SecretString=text)

    def _write(self, name: str) -> None:
        fields = {}
        plain = None
        for key, value in self.data.items():
            secret, field = self._place(key)
            if secret == name:
                if field is None:
                    plain = value
                else:
                    fields[field] = value
        self._put(name, json.dumps(fields) if fields else plain)

    def load(self, data: dict[str, str]) -> None:
        for page in self.client.get_paginator("list_secrets").paginate():
            for secret in page["SecretList"]:
                self._put(secret["Name"], None)
        self.data = dict(data)
        for name in dict.fromkeys(self._place(key)[0] for key in data):
            self._write(name)

    def set(self, key: str, value: str) -> None:
        self.data[key] = value
        self._write(self._place(key)[0])

    def delete(self, key: str) -> None:
        self.data.pop(key, None)
        self._write(self._place(key)[0])

    def args(self) -> list[str]:
        return ["--backend", "secretsmanager", *POLL]

    def env(self) -> dict[str, str]:
        return self.server.env()


class ImdsStore(Store):
    """The instance metadata double, with the case keys below `meta-data/` (`/db/host` is
    `meta-data/db/host`), which the backend also reports as the bare key `/db/host`."""

    name = "imds"

    def __init__(self, double: ImdsDouble) -> None:
        self.double = double

    def load(self, data: dict[str, str]) -> None:
        self.double.load({f"meta-data{key}": value for key, value in data.items()})

    def set(self, key: str, value: str) -> None:
        self.double.set(f"meta-data{key}", value)

    def delete(self, key: str) -> None:
        self.double.delete(f"meta-data{key}")

    def args(self) -> list[str]:
        return [
            "--backend", "imds", "--backend-opt", f"endpoint={self.double.url}",
            "--backend-opt", "imds_cache_ttl=0", *POLL,
        ]  # fmt: skip
