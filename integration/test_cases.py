"""The shared confdir through every backend: onetime output, then changes under `confd --watch`."""

from __future__ import annotations

import pytest

from integration.harness import EXPECT, EXPECTED, Confd, read, wait_for
from integration.stores import Store


@pytest.mark.parametrize("dest", sorted(EXPECTED))
def test_onetime_output_equals_expected(
    store: Store, mode: list[str], confd: Confd, dest: str
) -> None:
    done = confd.onetime(store, mode)
    assert done.returncode == 0, done.stdout + done.stderr
    assert read(confd.out / dest) == (EXPECT / EXPECTED[dest]).read_text()


def test_onetime_with_cli_prefix_reads_below_it(
    store: Store, mode: list[str], confd: Confd
) -> None:
    # --prefix /prefix is joined before each resource's prefix: basic.toml reads /prefix/database
    # (the prefix-*.toml resources then look under /prefix/prefix and fail, so the exit is 1).
    store.set("/prefix/database/host", "10.1.2.3")
    done = confd.onetime(store, [*mode, "--prefix", "/prefix"])
    assert "host=10.1.2.3\n" in read(confd.out / "basic.conf"), done.stdout + done.stderr


def test_watch_renders_a_changed_value(
    watched_store: Store, mode: list[str], confd: Confd
) -> None:
    process = confd.watch(watched_store, mode)
    basic = confd.out / "basic.conf"
    wait_for(lambda: "host=127.0.0.1\n" in read(basic), what="first render", details=confd.log)
    confd.wait_watching()
    watched_store.set("/database/host", "10.9.9.9")
    wait_for(lambda: "host=10.9.9.9\n" in read(basic), what="changed value", details=confd.log)
    assert process.poll() is None, confd.log()


def test_watch_drops_a_deleted_key(watched_store: Store, mode: list[str], confd: Confd) -> None:
    confd.watch(watched_store, mode)
    iteration = confd.out / "iteration.conf"
    wait_for(lambda: "10.0.1.11:8080" in read(iteration), what="first render", details=confd.log)
    confd.wait_watching()
    watched_store.delete("/upstream/app2")
    wait_for(
        lambda: "10.0.1.11:8080" not in read(iteration) and "10.0.1.10:8080" in read(iteration),
        what="app2 gone from iteration.conf", details=confd.log,
    )


def test_watch_keeps_last_good_file_while_a_required_key_is_missing(
    watched_store: Store, mode: list[str], confd: Confd
) -> None:
    process = confd.watch(watched_store, mode)
    basic = confd.out / "basic.conf"
    wait_for(lambda: "password=p@sSw0rd\n" in read(basic), what="first render", details=confd.log)
    confd.wait_watching()
    good = read(basic)
    watched_store.delete("/database/password")
    wait_for(
        lambda: "/database/password" in confd.log(),
        what="an error naming the key", details=confd.log,
    )
    assert read(basic) == good
    assert process.poll() is None, confd.log()
    watched_store.set("/database/password", "n3w")
    wait_for(lambda: "password=n3w\n" in read(basic), what="restored key", details=confd.log)


def test_watch_applies_a_change_made_during_the_first_render(
    watched_store: Store, mode: list[str], confd: Confd
) -> None:
    # The value changes as soon as the first file is written, while confd is still rendering
    # the others and starting its watches: the change must not fall between the two.
    confd.watch(watched_store, mode)
    basic = confd.out / "basic.conf"
    wait_for(lambda: "host=127.0.0.1\n" in read(basic), what="first render", details=confd.log)
    watched_store.set("/database/host", "10.8.8.8")
    wait_for(lambda: "host=10.8.8.8\n" in read(basic), what="changed value", details=confd.log)
