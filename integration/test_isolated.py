"""Every built-in as a subprocess plugin (`--isolate`): the shared cases over the protocol.

Each isolated run spawns confd and a plugin, so the onetime cases are checked in one run per
backend (every expected file compared, a failure names each case that differs) instead of one
run per case, and the watch is checked once per backend with a changed value and a deleted key.
"""

from __future__ import annotations

import difflib
import tomllib

from integration.harness import CONFDIR, EXPECT, EXPECTED, Confd, read, wait_for
from integration.stores import Store

ISOLATE = ["--isolate"]


def _resource_of(dest: str) -> str:
    """The conf.d file that writes `dest` (the case a difference belongs to)."""
    for path in sorted((CONFDIR / "conf.d").glob("*.toml")):
        if tomllib.loads(path.read_text())["template"]["dest"] == dest:
            return f"conf.d/{path.name}"
    return "no resource in conf.d"


def _differences(confd: Confd) -> list[str]:
    """One entry per destination that does not equal its expected file, with a short diff."""
    found = []
    for dest, expected_name in sorted(EXPECTED.items()):
        expected = (EXPECT / expected_name).read_text()
        actual = read(confd.out / dest)
        if actual != expected:
            diff = "".join(difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                f"expect/{expected_name}", dest, n=1,
            ))
            found.append(f"{_resource_of(dest)} -> {dest} differs from expect/{expected_name}:\n"
                         + (diff or "(missing)"))
    return found


def test_isolated_onetime_renders_every_case(store: Store, confd: Confd) -> None:
    done = confd.onetime(store, ISOLATE)
    differences = _differences(confd)
    assert not differences, "\n".join(differences) + "\n--- confd log:\n" + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plugin serving" in done.stdout + done.stderr, "the built-in did not run as a plugin"


def test_isolated_watch_applies_a_change_and_a_deletion(
    watched_store: Store, confd: Confd
) -> None:
    process = confd.watch(watched_store, ISOLATE)
    basic, iteration = confd.out / "basic.conf", confd.out / "iteration.conf"
    wait_for(lambda: "host=127.0.0.1\n" in read(basic), what="first render", details=confd.log)
    confd.wait_watching()
    assert "plugin serving" in confd.log(), "the built-in did not run as a plugin"
    watched_store.set("/database/host", "10.9.9.9")
    wait_for(lambda: "host=10.9.9.9\n" in read(basic), what="changed value", details=confd.log)
    watched_store.delete("/upstream/app2")
    wait_for(
        lambda: "10.0.1.11:8080" not in read(iteration) and "10.0.1.10:8080" in read(iteration),
        what="app2 gone from iteration.conf", details=confd.log,
    )
    assert process.poll() is None, confd.log()
