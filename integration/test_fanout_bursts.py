"""Issue #13's workload under bursts of puts: many resources sharing few etcd prefixes, every
change reaches its files, and no file whose content stays the same is written again.

40 resources on 4 prefixes (each reading its whole prefix; 9 keys of its own, the prefix's
shared key, a 25-key group), confd watching a real etcd. Each burst is 100 puts in a row: new
values for own, shared and group keys of two prefixes, and puts of the value a key already
holds (which must change nothing). Each prefix also has a resource listing its groups' members
(`ls`): it renders again on every change in a group, and its content never changes. After each
burst every file must show the store's values, and every file whose content did not change must
still be the same file (confd replaces a file by renaming a new one over it, so a rewrite shows
as another inode or modification time). The changes render from the watches' copies of the
store: etcd serves no range request during the bursts, and at the start only one per prefix
(the watches' baselines, which the first pass renders from).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.harness import Daemon, wait_for
from integration.servers import EtcdServer, free_port
from integration.stores import EtcdStore
from testsupport.fanout import (
    GROUP_SIZE,
    GROUPS,
    Resource,
    expected,
    layout,
    values,
    write_confdir,
)

ROOT = "/burst"
BURSTS = 3
PUTS = 100


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> Iterator[EtcdStore]:
    store = EtcdStore(etcd_server)
    try:
        yield store
    finally:
        store.close()


LISTING = "".join(f'{{% for name in ls("/g{g}") %}}{g} {{{{ name }}}}\n{{% endfor %}}'
                  for g in range(GROUPS))
LISTED = "".join(f"{g} m{m:02d}\n" for g in range(GROUPS) for m in range(GROUP_SIZE))


def add_listings(confdir: Path, out: Path, prefixes: list[str]) -> list[str]:
    """A resource per prefix listing its groups' members; returns their file names."""
    (confdir / "templates" / "listing.tmpl").write_text(LISTING)
    names = []
    for prefix in prefixes:
        name = "ls" + prefix.replace("/", "-")
        (confdir / "conf.d" / f"{name}.toml").write_text(
            f'[template]\nsrc = "listing.tmpl"\ndest = "{out}/{name}.conf"\n'
            f'prefix = "{prefix}"\nkeys = ["/"]\n'
        )
        names.append(f"{name}.conf")
    return names


def listings(out: Path, names: list[str]) -> dict[str, tuple[tuple[int, int], str]]:
    found = {}
    for name in names:
        info = (out / name).stat()
        found[name] = ((info.st_ino, info.st_mtime_ns), (out / name).read_text())
    return found


def files(out: Path, resources: list[Resource]) -> dict[str, tuple[tuple[int, int], str]]:
    """Each file's identity (inode and modification time: a file renamed over it has another
    one, even when the inode number is reused) and content."""
    found = {}
    for r in resources:
        path = out / f"{r.name}.conf"
        try:
            info = path.stat()
            found[r.name] = ((info.st_ino, info.st_mtime_ns), path.read_text())
        except FileNotFoundError:
            found[r.name] = ((0, 0), "")
    return found


def burst(rng: random.Random, data: dict[str, str], active: list[str],
          n: int) -> list[tuple[str, str]]:
    """`n` puts of distinct keys: new values for keys of the `active` prefixes (their shared
    keys first: every resource of the prefix shows it), and a third of the puts, anywhere,
    of the value the key already holds."""
    keys = sorted(data)
    changing = [k for k in keys if k.split("/")[2] in active]
    shared = [k for k in changing if k.endswith("/shared")]
    fresh = shared + rng.sample([k for k in changing if k not in shared], n - n // 3 - len(shared))
    same = rng.sample([k for k in keys if k not in fresh], n // 3)
    puts = [(k, f"{k}-v{rng.randrange(10**6)}") for k in fresh] + [(k, data[k]) for k in same]
    rng.shuffle(puts)
    return puts


def test_bursts_of_puts_reach_every_file_and_rewrite_no_unchanged_one(
    etcd: EtcdStore, tmp_path: Path
) -> None:
    resources = layout(40, 4, root=ROOT)
    data = values(resources)
    for key, value in data.items():
        etcd.set(key, value)
    out = tmp_path / "out"
    out.mkdir()
    confdir = write_confdir(tmp_path / "confdir", out, resources)
    listed = add_listings(confdir, out, sorted({r.prefix for r in resources}))
    metrics = f"127.0.0.1:{free_port()}"
    [ranges_at_start] = etcd.server.metrics("etcd_mvcc_range_total")
    daemon = Daemon(tmp_path, ["--watch", "--confdir", str(confdir), "--metrics-addr", metrics,
                               "--cache-dir", str(tmp_path / "cache"),
                               "--backend", "etcd", "--node", etcd.server.url])
    rng = random.Random(13)

    def settled(data: dict[str, str]) -> bool:
        now = files(out, resources)
        return all(now[r.name][1] == expected(r, data) for r in resources)

    try:
        wait_for(lambda: settled(data), "the first pass", daemon.log, timeout=60)
        time.sleep(0.5)  # the first pass's reads are done and counted
        [ranges_before] = etcd.server.metrics("etcd_mvcc_range_total")
        assert ranges_before - ranges_at_start == 4, "the start should read each prefix " \
            "once, for its watch; the first pass renders from the watches' copies"
        first = listings(out, listed)
        assert {text for _, text in first.values()} == {LISTED}
        for n in range(BURSTS):
            before = files(out, resources)
            active = [f"p{(n + i) % 4:02d}" for i in range(2)]
            puts = burst(rng, data, active, PUTS)
            for key, value in puts:
                etcd.set(key, value)
                data[key] = value
            wait_for(lambda: settled(data), f"burst {n}: every file showing the store",
                     lambda: daemon.log()[-5000:], timeout=30)
            time.sleep(0.5)  # a render still in flight would show by now
            after = files(out, resources)
            unchanged = [r.name for r in resources if expected(r, data) == before[r.name][1]]
            changed = [r.name for r in resources if r.name not in unchanged]
            assert changed, "the burst changed no file: the test would prove nothing"
            assert unchanged, "the burst changed every file: nothing to check rewrites against"
            rewritten = [name for name in unchanged if after[name][0] != before[name][0]]
            assert rewritten == [], f"burst {n}: files rewritten with the same content"
            assert all(after[name][0] != before[name][0] for name in changed)
            assert listings(out, listed) == first, "a listing whose members never change was " \
                "written again"
        [ranges_after] = etcd.server.metrics("etcd_mvcc_range_total")
        assert ranges_after == ranges_before, "changes the watch reported read etcd again " \
            "instead of rendering from the watch's copy"
        log = daemon.log()
        again = [name for name in listed if f"Target config {out / name} in sync" in log]
        assert again == listed, "the listings were not rendered again: the check proves nothing"
    finally:
        status = daemon.stop()
    assert status == 0, daemon.log()[-3000:]
