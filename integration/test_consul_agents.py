"""Consul with several agents in `--node`: one dies mid-watch, the next one takes the blocking
query over with its index, and nothing written meanwhile is lost.

The agents are Consul doubles of one datacenter (`ConsulDouble(agent_of=...)`): separate ports
and lifecycles, one KV table and index, as real agents forwarding to the same servers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builtin.consul import ConsulDatabase
from integration.consul_double import ConsulDouble
from integration.harness import Daemon, confdir_with, read, wait_for


@pytest.fixture
def agents() -> Iterator[tuple[ConsulDouble, ConsulDouble]]:
    first = ConsulDouble()
    first.start()
    second = ConsulDouble(agent_of=first)
    second.start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def blocking(agent: ConsulDouble) -> list[dict[str, str]]:
    """The blocking queries `agent` has received."""
    return [q for q in agent.queries if q.get("index")]


def test_blocking_query_resumes_with_its_index_on_the_next_agent(
    agents: tuple[ConsulDouble, ConsulDouble], caplog: pytest.LogCaptureFixture
) -> None:
    first, second = agents
    first.put("app/value", "before")
    database = ConsulDatabase()
    database.configure({"nodes": f"{first.address},{second.address}"})
    stop = threading.Event()
    changes: list[object] = []
    try:
        assert database.get_values(["/app"]) == {"/app/value": "before"}
        known = first.index
        watch = database.watch_prefix("/app", ["/app"], stop)
        with caplog.at_level(logging.WARNING, logger="confd.backends.consul"):
            reader = threading.Thread(target=lambda: changes.append(next(watch)), daemon=True)
            reader.start()
            wait_for(lambda: blocking(first), "a blocking query on the first agent", timeout=5)
            first.stop()  # the agent dies with the query in flight
            second.put("app/value", "during")  # before the watch reaches the second agent
            assert database.get_values(["/app"]) == {"/app/value": "during"}  # a render, racing
            reader.join(10)
        assert changes == [{"/app/value"}]
        assert blocking(second)[0]["index"] == str(known)  # resumed, not started over
        moves = [r.getMessage() for r in caplog.records]
        assert moves == [f"backend 'consul': failing over to agent http://{second.address} "
                         f"(http://{first.address}: ConnectionError)"], moves
    finally:
        stop.set()
        database.close()


def test_all_agents_down_names_each(agents: tuple[ConsulDouble, ConsulDouble]) -> None:
    from plugin_sdk.database import DatabaseError

    first, second = agents
    database = ConsulDatabase()
    database.configure({"nodes": f"{first.address},{second.address}"})
    first.stop()
    second.stop()
    with pytest.raises(DatabaseError, match=rf"no node answered \(http://{first.address}: "
                                            rf"ConnectionError; http://{second.address}: "):
        database.get_values(["/app"])


def test_confd_watch_follows_the_surviving_agent(
    agents: tuple[ConsulDouble, ConsulDouble], tmp_path: Path
) -> None:
    first, second = agents
    first.put("fault/value", "start")
    reloads = tmp_path / "reloads"
    confdir = confdir_with(tmp_path, {"app.conf": (
        '{{ getv("/fault/value") }}\n', f'reload_cmd = "echo reload >> {reloads}"\n'
    )})  # fmt: skip
    daemon = Daemon(tmp_path, ["--watch", "--backend", "consul", "--node", first.address,
                               "--node", second.address, "--confdir", str(confdir)])
    dest = tmp_path / "out" / "app.conf"
    try:
        wait_for(lambda: read(dest) == "start\n", "the first render", daemon.log)
        wait_for(lambda: blocking(first), "confd's blocking query", daemon.log)
        first.stop()
        second.put("fault/value", "after-failover")
        wait_for(lambda: read(dest) == "after-failover\n", "the value written after the agent "
                 "died", daemon.log)
        second.put("fault/value", "after-failover")  # the same value again: no change
        second.put("fault/value", "last")
        wait_for(lambda: read(dest) == "last\n", "the last value", daemon.log)
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    log = daemon.log()
    assert log.count("failing over to agent") == 1, log
    assert "watch on consul" not in log, log  # the daemon never saw the watch fail
    assert read(reloads).splitlines() == ["reload"] * 3, log  # first render + 2 changes, no more
