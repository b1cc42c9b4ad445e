"""`/ready` and `/health` tell the truth about a daemon whose backend is down at start.

With etcd not yet running, confd --watch starts, renders nothing, and answers 503 on `/ready`
naming the resource that has not rendered and 503 on `/health` naming the failing watch; once
etcd runs and holds the key, the file is written and both answer 200.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import grpc
from pyetcd import etcdrpc

from integration.servers import EtcdServer, free_port
from testsupport.daemon_process import Confdir, ConfdProcess, read, wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_ready_is_503_while_etcd_is_down_at_start_and_200_after(tmp_path: Path) -> None:
    confdir = Confdir(tmp_path)
    dest = confdir.resource("app", '{{ getv("/app/x") }}\n', ["/app"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = EtcdServer()  # its port is chosen, it does not run yet
    proc = ConfdProcess(["--watch", "--backend", "etcd", "--node", server.url, "--confdir",
                         str(confdir.confdir), "--metrics-addr", f"127.0.0.1:{port}",
                         "--backend-opt", "timeout=1"])
    try:
        wait_until(lambda: get(base + "/ready")[0] == 503, 20, lambda: proc.log)
        proc.wait_for_log("resources rendered", timeout=30)
        assert get(base + "/ready") == (503, "not ready\nnot rendered yet: app.toml\n")
        wait_until(lambda: get(base + "/health")[0] == 503, 20, lambda: proc.log)
        assert "etcd:/" in get(base + "/health")[1]
        server.start()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            etcdrpc.KVStub(channel).Put(etcdrpc.PutRequest(key=b"/app/x", value=b"1"))
        wait_until(lambda: read(dest) == "1\n", 30, lambda: proc.log)
        wait_until(lambda: get(base + "/ready") == (200, "ready\n"), 10, lambda: proc.log)
        wait_until(lambda: get(base + "/health") == (200, "ok\n"), 10, lambda: proc.log)
    finally:
        proc.kill()
        server.cleanup()
