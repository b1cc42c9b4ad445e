"""etcd over TLS, against a real etcd that demands a client certificate: the CA verifies it,
and `client_insecure` (Go confd's -client-insecure) reads without verifying, with a warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pyetcd import etcdrpc

from builtin.etcd import EtcdDatabase
from integration.certs import TLSFiles, write_tls_files
from integration.servers import EtcdServer
from plugin_sdk.database import DatabaseError


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """The server certificate names `localhost` only: dialing 127.0.0.1 cannot verify it."""
    return write_tls_files(tmp_path_factory.mktemp("etcd-tls"), "localhost")


@pytest.fixture(scope="module")
def server(tls: TLSFiles) -> Iterator[EtcdServer]:
    files = {"cert": str(tls.server_cert), "key": str(tls.server_key), "ca": str(tls.ca)}
    with EtcdServer(tls=files) as etcd:
        credentials = grpc.ssl_channel_credentials(
            tls.ca.read_bytes(), tls.client_key.read_bytes(), tls.client_cert.read_bytes()
        )
        with grpc.secure_channel(f"localhost:{etcd.port}", credentials) as channel:
            etcdrpc.KVStub(channel).Put(etcdrpc.PutRequest(key=b"/app/x", value=b"over tls"),
                                        timeout=10)
        yield etcd


def read(settings: dict[str, str]) -> dict[str, str]:
    database = EtcdDatabase()
    database.configure({"timeout": "3", **settings})
    try:
        return database.get_values(["/app"])
    finally:
        database.close()


def client(tls: TLSFiles) -> dict[str, str]:
    return {"client_cert": str(tls.client_cert), "client_key": str(tls.client_key)}


def test_the_ca_verifies_the_server(server: EtcdServer, tls: TLSFiles) -> None:
    settings = {"nodes": f"https://localhost:{server.port}", "client_ca_keys": str(tls.ca)}
    assert read({**settings, **client(tls)}) == {"/app/x": "over tls"}


def test_an_unverifiable_server_is_refused(server: EtcdServer, tls: TLSFiles) -> None:
    settings = {"nodes": f"https://127.0.0.1:{server.port}", "client_ca_keys": str(tls.ca)}
    with pytest.raises(DatabaseError, match=f"https://127.0.0.1:{server.port}: unavailable"):
        read({**settings, **client(tls)})


def test_client_insecure_reads_without_verifying_and_warns(
    server: EtcdServer, tls: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"nodes": f"https://127.0.0.1:{server.port}", "client_insecure": "true"}
    with caplog.at_level(logging.WARNING, logger="confd.backends.etcd"):
        assert read({**settings, **client(tls)}) == {"/app/x": "over tls"}
    assert [r.getMessage() for r in caplog.records] == [
        "backend 'etcd': client_insecure: etcd's TLS certificate is not verified"
    ]


def test_client_insecure_still_presents_the_client_certificate(
    server: EtcdServer, tls: TLSFiles, tmp_path: Path
) -> None:
    # without a client certificate etcd refuses the handshake: the error says what the relay saw
    settings = {"nodes": f"https://127.0.0.1:{server.port}", "client_insecure": "true"}
    with pytest.raises(DatabaseError, match=r"unavailable \(TLS handshake failed"):
        read(settings)


def test_client_insecure_on_plain_http_changes_nothing(
    etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="confd.backends.etcd"):
        read({"nodes": etcd_server.url, "client_insecure": "true"})
    assert caplog.records == []
