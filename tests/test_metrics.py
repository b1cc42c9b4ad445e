"""The metrics endpoint as a scraper sees it: counters, health and readiness over HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from confd.errors import ConfigError
from confd.observe.endpoint import MetricsServer, parse_address
from confd.observe.metrics import Metrics


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics()
    server = MetricsServer(metrics, "127.0.0.1:0").start()
    try:
        yield metrics, f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_count_renders_failures_reloads_and_errors(served):
    metrics, base = served
    metrics.rendered("nginx.toml", reloaded=True)
    metrics.rendered("nginx.toml")
    metrics.render_failed('we"ird.toml')
    metrics.backend_error("etcd")
    metrics.watch_reconnected("/app")
    status, content_type, body = _get(base + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    lines = body.splitlines()
    assert 'confd_renders_total{resource="nginx.toml"} 2' in lines
    assert 'confd_reloads_total{resource="nginx.toml"} 1' in lines
    assert 'confd_render_failures_total{resource="we\\"ird.toml"} 1' in lines
    assert 'confd_backend_errors_total{backend="etcd"} 1' in lines
    assert 'confd_watch_reconnects_total{prefix="/app"} 1' in lines
    assert "# TYPE confd_renders_total counter" in lines
    assert any(
        line.startswith('confd_last_success_timestamp_seconds{resource="nginx.toml"} ')
        for line in lines
    )


def _expect(m):
    m.expect(["a.toml", "b.toml"])


def _all_rendered(m):
    _expect(m)
    m.rendered("a.toml")
    m.rendered("b.toml")


@pytest.mark.parametrize(
    ("path", "set_state", "code", "body"),
    [
        ("/ready", lambda m: None, 503, "not ready\n"),
        ("/ready", _expect, 503,
         "not ready\nnot rendered yet: a.toml\nnot rendered yet: b.toml\n"),
        ("/ready", lambda m: (_expect(m), m.rendered("a.toml")), 503,
         "not ready\nnot rendered yet: b.toml\n"),
        ("/ready", _all_rendered, 200, "ready\n"),
        ("/ready", lambda m: (_all_rendered(m), m.stopping()), 503, "not ready\n"),
        ("/health", lambda m: None, 200, "ok\n"),
        ("/health", lambda m: setattr(m, "worker_alive", False), 503,
         "unhealthy\nthe render thread has stopped\n"),
        ("/health", lambda m: m.backend_state("etcd", "etcd:/app", OSError("refused")), 503,
         "unhealthy\netcd:/app: OSError: refused\n"),
        ("/health", lambda m: (m.backend_state("etcd", "etcd:/app", OSError("refused")),
                               m.backend_state("etcd", "etcd:/app", None)), 200, "ok\n"),
        ("/nope", lambda m: None, 404, "not found\n"),
    ],
)
def test_health_and_ready_endpoints(served, path, set_state, code, body):
    metrics, base = served
    set_state(metrics)
    status, _, text = _get(base + path)
    assert (status, text) == (code, body)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        (":9100", ("0.0.0.0", 9100)),
        ("[::1]:80", ("::1", 80)),
    ],
)
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["9100", "host:", "host:port", "h:70000"])
def test_parse_address_rejects_bad_values(text):
    with pytest.raises(ConfigError, match="--metrics-addr"):
        parse_address(text)


def test_port_in_use_is_a_clear_error(served):
    _, base = served
    port = base.rsplit(":", 1)[1]
    with pytest.raises(ConfigError, match="cannot listen"):
        MetricsServer(Metrics(), f"127.0.0.1:{port}")
