"""Fixtures of the integration suite: real servers (session-scoped), stores, and confd runs.

`store` is parametrized over every backend in `integration.stores.STORES`; `mode` is the second
dimension (how the backend runs) of the per-case tests. The isolated way (`--isolate`: the
built-in served out of process as a plugin) is covered by `test_isolated.py`: every case in one
onetime run per backend, and a watch per backend, since each run spawns confd and a plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.consul_double import ConsulDouble
from integration.harness import KEYS, Confd
from integration.imds_double import ImdsDouble
from integration.servers import EtcdServer, MotoServer, RedisServer, ZooKeeperServer
from integration.stores import (
    STORES,
    WATCHABLE,
    ConsulStore,
    DynamoDBStore,
    EnvStore,
    EtcdStore,
    FileStore,
    ImdsStore,
    RedisStore,
    SecretsManagerStore,
    SSMStore,
    Store,
    VaultStore,
    ZooKeeperStore,
)
from integration.vault_double import VaultDouble

MODES = {"in-process": []}  # isolated: see test_isolated.py (one run per backend, not per case)


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def zookeeper_server() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture(scope="session")
def consul_double() -> Iterator[ConsulDouble]:
    double = ConsulDouble()
    double.start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture(scope="session")
def vault_double() -> Iterator[VaultDouble]:
    with VaultDouble() as double:
        yield double


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server for the AWS backends' shared cases (each adapter replaces its data)."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def imds_double() -> Iterator[ImdsDouble]:
    with ImdsDouble() as double:
        yield double


def make_store(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The adapter for backend `name`, starting its session server on first use."""
    if name == "env":
        return EnvStore()
    if name == "file":
        return FileStore(tmp_path)
    if name == "etcd":
        return EtcdStore(request.getfixturevalue("etcd_server"))
    if name == "consul":
        return ConsulStore(request.getfixturevalue("consul_double"))
    if name == "redis":
        return RedisStore(request.getfixturevalue("redis_server"))
    if name == "zookeeper":
        return ZooKeeperStore(request.getfixturevalue("zookeeper_server"))
    if name == "vault":
        return VaultStore(request.getfixturevalue("vault_double"))
    if name == "dynamodb":
        return DynamoDBStore(request.getfixturevalue("moto_server"))
    if name == "ssm":
        return SSMStore(request.getfixturevalue("moto_server"))
    if name == "secretsmanager":
        return SecretsManagerStore(request.getfixturevalue("moto_server"))
    if name == "imds":
        return ImdsStore(request.getfixturevalue("imds_double"))
    raise AssertionError(f"no store adapter for backend {name!r}")


def loaded_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The adapter for backend `request.param` holding the case keys; closed afterwards."""
    adapter = make_store(request.param, request, tmp_path)
    adapter.load(KEYS)
    yield adapter
    close = getattr(adapter, "close", None)
    if close:
        close()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each backend in turn, holding exactly the shared case keys."""
    yield from loaded_store(request, tmp_path)


@pytest.fixture(params=WATCHABLE)
def watched_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each backend whose values can change under a running confd, holding the case keys."""
    yield from loaded_store(request, tmp_path)


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> list[str]:
    """Extra confd flags of the run mode (see MODES)."""
    return MODES[request.param]


@pytest.fixture
def confd(tmp_path: Path) -> Iterator[Confd]:
    runner = Confd(tmp_path)
    try:
        yield runner
    finally:
        runner.stop()
