"""The metrics endpoint as a scraper sees it: counters, health and readiness over HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from confd.errors import ConfigError
from confd.observe.metrics import Metrics, MetricsServer, parse_address


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


@pytest.mark.parametrize(
    ("path", "set_state", "code"),
    [
        ("/ready", lambda m: None, 503),
        ("/ready", lambda m: setattr(m, "ready", True), 200),
        ("/health", lambda m: None, 200),
        ("/health", lambda m: setattr(m, "healthy", False), 503),
        ("/nope", lambda m: None, 404),
    ],
)
def test_health_and_ready_endpoints(served, path, set_state, code):
    metrics, base = served
    set_state(metrics)
    assert _get(base + path)[0] == code


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
