"""Hostile values (10 MB, binary, non-UTF-8, unicode keys, `..`, template syntax) come through
real etcd and Redis servers intact, and are never logged."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from pyetcd import etcdrpc

from integration.servers import EtcdServer, RedisServer
from testsupport.daemon_process import Confdir


def no_traceback(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return output


BIG = 10 * 1024 * 1024 + 17
VALUES: dict[str, bytes] = {
    "/app/big": b"B" * BIG,
    "/app/binary": b"\x00\x01\xff\xfe\x80nul",
    "/app/latin1": "caf\xe9".encode("latin-1"),
    "/app/ünïcode/ключ": "値 ✓ 🎉".encode(),
    "/app/dots/../up": b"cleaned",
    "/app/tmpl": b"{{ 7*7 }}",
}
TEMPLATE = (
    '{{ getv("/app/big") | length }}|{{ getv("/app/big")[:3] }}\n'
    '{{ getv("/app/binary") }}\n'
    '{{ getv("/app/latin1") }}\n'
    '{{ getv("/app/ünïcode/ключ") }}\n'
    '{{ getv("/app/up") }}|{{ exists("/up") }}\n'
    '{{ getv("/app/tmpl") }}\n'
)
EXPECTED = (
    f"{BIG}|BBB\n"
    "\x00\x01\ufffd\ufffd\ufffdnul\n"
    "caf\ufffd\n"
    "値 ✓ 🎉\n"
    "cleaned|false\n"  # Go-style printing of booleans
    "{{ 7*7 }}\n"
)



class BigEtcdServer(EtcdServer):
    """etcd accepting requests up to 16 MiB (its default is 1.5 MiB) for the 10 MB value."""

    def command(self) -> list[str]:
        return [*super().command(), "--max-request-bytes", str(16 * 1024 * 1024)]


@pytest.fixture(scope="module")
def etcd_values() -> Iterator[list[str]]:
    server = BigEtcdServer()
    try:
        server.start()
        options = [("grpc.max_send_message_length", 32 << 20)]
        with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel:
            kv = etcdrpc.KVStub(channel)
            for key, value in VALUES.items():
                kv.Put(etcdrpc.PutRequest(key=key.encode(), value=value), timeout=30)
        yield ["--backend", "etcd", "--node", server.url]
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def redis_values() -> Iterator[list[str]]:
    server = RedisServer()
    try:
        server.start()
        client = redis.Redis(port=server.port, socket_timeout=30)
        client.mset(VALUES)
        client.close()
        yield ["--backend", "redis", "--node", f"127.0.0.1:{server.port}"]
    finally:
        server.cleanup()


@pytest.mark.parametrize("backend", ["etcd", "redis"])
def test_hostile_values_through_real_servers(
    request: pytest.FixtureRequest, tmp_path: Path, run_confd, backend: str
) -> None:
    args = request.getfixturevalue(f"{backend}_values")
    confdir = Confdir(tmp_path)
    dest = confdir.resource("v.conf", TEMPLATE, ["/app"])
    started = time.monotonic()
    result = run_confd("--onetime", *args, "--confdir", str(confdir.confdir), timeout=120)
    output = no_traceback(result)
    assert result.returncode == 0, output
    assert dest.read_text(encoding="utf-8") == EXPECTED
    assert time.monotonic() - started < 30
    assert "BBBBBBBB" not in output  # the value itself is never logged
