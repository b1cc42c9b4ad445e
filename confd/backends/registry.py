"""The backend registry: names of built-in databases and where their code lives.

Entries are import paths, loaded only when a backend is selected, so choosing
`env` never imports an etcd, Consul, Redis or gRPC client.
"""

import importlib
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from confd.errors import BackendError
from confd.log import attach
from plugin_sdk.database import Database, DatabaseError

BUILTINS: dict[str, str] = {
    "env": "builtin.env:EnvDatabase",
    "file": "builtin.file:FileDatabase",
    "etcd": "builtin.etcd:EtcdDatabase",
    "consul": "builtin.consul:ConsulDatabase",
    "redis": "builtin.redis:RedisDatabase",
    "zookeeper": "builtin.zookeeper:ZooKeeperDatabase",
    "vault": "builtin.vault:VaultDatabase",
    "dynamodb": "builtin.dynamodb:DynamoDBDatabase",
    "ssm": "builtin.ssm:SSMDatabase",
    "secretsmanager": "builtin.secretsmanager:SecretsManagerDatabase",
    "acm": "builtin.acm:AcmDatabase",
    "imds": "builtin.imds:ImdsDatabase",
}
# Go confd's other names for a built-in.
ALIASES: dict[str, str] = {"etcdv3": "etcd"}
# Backends Go confd had whose service no longer exists: selecting one says so.
RETIRED: dict[str, str] = {
    "rancher": "Rancher 1.x's metadata service, which Go confd's rancher backend read, no longer"
    " exists (Rancher 2 has none); read the values from another backend (e.g. env, file, etcd)",
}


class Entry(NamedTuple):
    """A registered backend: its name and `module:Class` import path."""

    name: str
    target: str

    def load(self) -> type[Database]:
        """Import and return the backend class."""
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, attr)
        except ImportError as exc:
            raise BackendError(
                f"backend {self.name!r}: cannot import {self.target} ({exc})"
            ) from exc
        attach()  # a backend that logs through the logging package finds confd's handler
        if not (isinstance(cls, type) and issubclass(cls, Database)):
            raise BackendError(f"backend {self.name!r}: {self.target} is not a Database")
        return cls


class Registry:
    """An instance-scoped map of backend names to built-in implementations."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str) -> None:
        """Add a backend; a name registered twice is an error."""
        if name in self._entries:
            raise BackendError(f"backend {name!r} is registered twice")
        self._entries[name] = Entry(name, target)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    @staticmethod
    def canonical(name: str) -> str:
        """The built-in name behind Go confd's aliases (`etcdv3` is `etcd`); a retired
        backend is a `BackendError` saying why it is gone."""
        if name in RETIRED:
            raise BackendError(f"backend {name!r} is not available: {RETIRED[name]}")
        return ALIASES.get(name, name)

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise BackendError(
                f"unknown backend {name!r} (built-in: {', '.join(sorted(self._entries))})"
            ) from None

    def create(self, name: str, config: Mapping[str, str]) -> Database:
        """Instantiate and configure built-in `name`; setting errors become `BackendError`."""
        database = self.get(name).load()()
        try:
            database.configure(config)
        except DatabaseError as exc:
            raise BackendError(str(exc)) from exc
        return database


def default_registry() -> Registry:
    """A registry holding every built-in backend."""
    registry = Registry()
    for name, target in BUILTINS.items():
        registry.register(name, target)
    return registry
