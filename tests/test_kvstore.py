"""The KV store behaves as Go confd's memkv: lookups, globs, listings, and read recording."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confd.template.store import BadPattern, KeyNotFound, KVPair, KVStore, Reads, clean_key

# memkv's own test data, so results can be compared with confd's.
DEIS = {
    "/deis/database/user": "user",
    "/deis/database/pass": "pass",
    "/deis/services/key": "value",
    "/deis/services/notaservice/foo": "bar",
    "/deis/services/srv1/node1": "10.244.1.1:80",
    "/deis/services/srv1/node2": "10.244.1.2:80",
    "/deis/services/srv2/node1": "10.244.2.1:80",
    "/deis/prefix/node1": "prefix_node1",
    "/deis/prefix/node2/leafnode": "prefix_node2",
    "/deis/prefix/node2/sub1/leaf1": "prefix_node2_sub1_leaf1",
    "/deis/prefix/node2/sub1/leaf2": "prefix_node2_sub1_leaf2",
    "/deis/prefix/node3/leafnode": "prefix_node3",
    "/deis/prefix_a/node4": "prefix_a_node4",
    "/deis/prefixb/node5/leafnode": "prefixb_node5",
}

APP = {
    "/app/db/pass": "foo",
    "/app/db/user": "admin",
    "/app/port": "443",
    "/app/url": "app.example.com",
    "/app/vhosts/host1": "app.example.com",
    "/app/upstream/host1": "203.0.113.0.1:8080",
    "/app/upstream/host1/domain": "app.example.com",
    "/app/upstream/host2": "203.0.113.0.2:8080",
    "/app/upstream/host2/domain": "app.example.com",
    "/app/weird[1]": "bracket",
}


@pytest.fixture
def deis() -> KVStore:
    return KVStore(DEIS)


@pytest.fixture
def app() -> KVStore:
    return KVStore(APP)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/a", "/a"),
        ("//a/", "/a"),
        ("/a//b/./c/", "/a/b/c"),
        ("/a/../b", "/b"),
        ("/../a", "/a"),
        ("", "."),
        ("/", "/"),
        ("///", "/"),
        ("a/b/", "a/b"),
        ("/.hidden", "/.hidden"),
    ],
)
def test_clean_key_matches_go_path_clean(raw: str, clean: str) -> None:
    assert clean_key(raw) == clean


@pytest.mark.parametrize(
    ("key", "want"),
    [
        ("/app/port", KVPair("/app/port", "443")),
        ("//app//port/", KVPair("/app/port", "443")),
        ("/app/db/user", KVPair("/app/db/user", "admin")),
    ],
)
def test_get(app: KVStore, key: str, want: KVPair) -> None:
    assert app.get(key) == want


@pytest.mark.parametrize("key", ["/missing", "/app", "/app/db", "/app/port/x"])
def test_get_missing_key_raises_key_not_found(app: KVStore, key: str) -> None:
    with pytest.raises(KeyNotFound) as info:
        app.get(key)
    assert info.value.key == key
    assert str(info.value) == f'key "{key}" not found'


@pytest.mark.parametrize(
    ("key", "default", "want"),
    [
        ("/app/port", None, "443"),
        ("/app/port", "80", "443"),
        ("/missing", "80", "80"),
        ("/missing", "", ""),
        ("/app//url", None, "app.example.com"),
    ],
)
def test_getv(app: KVStore, key: str, default: str | None, want: str) -> None:
    assert app.getv(key, default) == want


def test_getv_without_default_raises_for_missing_key(app: KVStore) -> None:
    with pytest.raises(KeyNotFound, match='key "/nope" not found'):
        app.getv("/nope")


def test_empty_value_is_a_value_not_a_missing_key() -> None:
    store = KVStore({"/empty": ""})
    assert store.getv("/empty", "default") == ""
    assert store.exists("/empty")


@pytest.mark.parametrize(
    ("pattern", "want"),
    [
        ("/app/db/*", [("/app/db/pass", "foo"), ("/app/db/user", "admin")]),
        (
            "/app/*/host1",
            [
                ("/app/upstream/host1", "203.0.113.0.1:8080"),
                ("/app/vhosts/host1", "app.example.com"),
            ],
        ),
        (
            "/app/upstream/*",
            [
                ("/app/upstream/host1", "203.0.113.0.1:8080"),
                ("/app/upstream/host2", "203.0.113.0.2:8080"),
            ],
        ),
        ("/app/missing/*", []),
        ("/app/*", [
            ("/app/port", "443"), ("/app/url", "app.example.com"), ("/app/weird[1]", "bracket"),
        ]),
        ("/app/db/use?", [("/app/db/user", "admin")]),
        ("/app/db/[pq]ass", [("/app/db/pass", "foo")]),
        ("/app/db/[^p]*", [("/app/db/user", "admin")]),
        ("/app/db/[a-p]*", [("/app/db/pass", "foo")]),
        ("/app/db/[z-a]*", []),  # inverted range: matches nothing, as in Go
        ("/app/weird\\[1\\]", [("/app/weird[1]", "bracket")]),
        ("/app/port", [("/app/port", "443")]),
        ("/app/*/domain", []),  # * is one level: the domain keys sit two below /app
        ("/app/upstream/*/domain", [
            ("/app/upstream/host1/domain", "app.example.com"),
            ("/app/upstream/host2/domain", "app.example.com"),
        ]),
        ("/app?db/user", []),  # ? never matches "/"
        ("/app[/]db/user", []),  # nor does a class
        ("/app[^x]db/user", []),  # nor a negated class
        ("/*", []),
        ("*", []),
    ],
)
def test_gets_matches_like_go_path_match_sorted_by_key(
    app: KVStore, pattern: str, want: list[tuple[str, str]]
) -> None:
    assert app.gets(pattern) == [KVPair(k, v) for k, v in want]


@pytest.mark.parametrize("pattern", ["[]a]", "/app/\\", "/app/[a", "/app/[a-", "/app/[^]", "[-a]"])
def test_gets_with_bad_pattern_raises_bad_pattern(app: KVStore, pattern: str) -> None:
    with pytest.raises(BadPattern) as info:
        app.gets(pattern)
    assert info.value.pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "want"),
    [
        ("/app/upstream/*", ["203.0.113.0.1:8080", "203.0.113.0.2:8080"]),
        ("/app/db/*", ["admin", "foo"]),  # sorted by value, not by key
        ("/app/*", ["443", "app.example.com", "bracket"]),
        ("/none/*", []),
    ],
)
def test_getvs_sorted_by_value(app: KVStore, pattern: str, want: list[str]) -> None:
    assert app.getvs(pattern) == want


@pytest.mark.parametrize(
    ("key", "want"),
    [
        ("/app/port", True),
        ("/app//port/", True),
        ("/app", False),
        ("/app/db", False),
        ("/x", False),
    ],
)
def test_exists(app: KVStore, key: str, want: bool) -> None:
    assert app.exists(key) is want


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/deis/services", ["key", "notaservice", "srv1", "srv2"]),
        ("/deis/services/", ["key", "notaservice", "srv1", "srv2"]),
        ("/deis/prefix", ["node1", "node2", "node3"]),  # not prefix_a nor prefixb
        ("/deis/prefix/", ["node1", "node2", "node3"]),
        ("/deis/services/key", ["key"]),  # a key lists its own name, as memkv
        ("/deis/prefix/node2/sub1", ["leaf1", "leaf2"]),
        ("/deis", ["database", "prefix", "prefix_a", "prefixb", "services"]),
        ("/", ["deis"]),
        ("/nothing", []),
    ],
)
def test_ls(deis: KVStore, path: str, want: list[str]) -> None:
    assert deis.ls(path) == want


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/deis/services", ["notaservice", "srv1", "srv2"]),
        ("/deis/services/", ["notaservice", "srv1", "srv2"]),
        ("/deis/prefix", ["node2", "node3"]),
        ("/deis/prefix/node2", ["sub1"]),
        ("/deis/services/key", []),
        ("/deis/prefix/node2/sub1", []),
        ("/", ["deis"]),
        ("/nothing", []),
    ],
)
def test_lsdir(deis: KVStore, path: str, want: list[str]) -> None:
    assert deis.lsdir(path) == want


def test_set_delete_and_replace_are_seen_by_later_reads() -> None:
    store = KVStore()
    store.set("//a/b/", "1")
    assert store.getv("/a/b") == "1"
    assert store.ls("/a") == ["b"]
    store.set("/a/c", "2")
    assert store.ls("/a") == ["b", "c"]
    store.delete("/a/b")
    assert not store.exists("/a/b")
    assert store.ls("/a") == ["c"]
    store.replace({"/z": "9"})
    assert store.snapshot() == {"/z": "9"}
    assert store.ls("/") == ["z"]


def test_view_records_reads_by_kind() -> None:
    store = KVStore(APP)
    reads = Reads()
    view = store.view(reads)
    view.getv("/app/port")
    view.getv("/missing", "x")
    view.exists("/app/flag")
    with pytest.raises(KeyNotFound):
        view.get("/app/gone")
    view.gets("/app/db/*")
    view.getvs("/app/upstream/*")
    view.ls("/app/vhosts/")
    view.lsdir("/app")
    assert reads.keys == {"/app/port", "/missing", "/app/flag", "/app/gone"}
    assert reads.patterns == {"/app/db/*", "/app/upstream/*"}
    assert reads.dirs == {"/app/vhosts", "/app"}


def test_store_methods_do_not_record_outside_recording() -> None:
    store = KVStore(APP)
    with store.recording() as reads:
        store.getv("/app/port")
    store.getv("/app/url")
    assert reads.keys == {"/app/port"}


def test_recording_is_per_thread() -> None:
    store = KVStore(APP)
    barrier = threading.Barrier(2)
    seen: dict[str, set[str]] = {}

    def work(key: str) -> None:
        with store.recording() as reads:
            barrier.wait()
            store.getv(key)
            barrier.wait()
        seen[key] = reads.keys

    threads = [threading.Thread(target=work, args=(k,)) for k in ("/app/port", "/app/url")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"/app/port": {"/app/port"}, "/app/url": {"/app/url"}}


def _reads() -> Reads:
    return Reads(
        keys={"/db/host", "/db/port"},
        patterns={"/app/upstream/*", "/svc/*/addr"},
        dirs={"/hosts"},
    )


@pytest.mark.parametrize(
    ("changed", "want"),
    [
        ("/db/host", True),
        ("//db/host/", True),
        ("/db/user", False),
        ("/db", True),  # a whole directory changed (deleted) above a read key
        ("/", True),
        ("/app/upstream/h1", True),
        ("/app/upstream/h1/domain", False),  # * does not cross /
        ("/app/upstream", True),  # directory above a pattern
        ("/app/other", False),
        ("/svc/web/addr", True),
        ("/svc/web/port", False),
        ("/hosts", True),
        ("/hosts/a", True),
        ("/hosts/a/b/c", True),  # lsdir output can change with any depth below
        ("/hostsx", False),
        ("/elsewhere", False),
    ],
)
def test_depends_on(changed: str, want: bool) -> None:
    assert _reads().depends_on(changed) is want


def test_depends_on_with_nothing_read_is_false() -> None:
    assert Reads().depends_on("/anything") is False


# -- fuzzing -----------------------------------------------------------------------------

_segment = st.text(alphabet="ab/.*?[]^-\\é", max_size=6)
_keys = st.lists(st.text(alphabet="ab/.é", min_size=0, max_size=10), max_size=12)


@settings(max_examples=200, deadline=None)
@given(keys=_keys, probe=_segment)
def test_fuzz_kv_functions_raise_only_documented_errors(keys: list[str], probe: str) -> None:
    store = KVStore({k: f"v{i}" for i, k in enumerate(keys)})
    reads = Reads()
    view = store.view(reads)
    try:
        pairs = view.gets(probe)
    except BadPattern:
        pairs = None
    if pairs is not None:
        assert [p.key for p in pairs] == sorted(p.key for p in pairs)
        assert all(store.exists(p.key) for p in pairs)
        assert view.getvs(probe) == sorted(p.value for p in pairs)
        assert all(reads.depends_on(p.key) for p in pairs)
    listed = view.ls(probe)
    assert listed == sorted(set(listed))
    assert set(view.lsdir(probe)) <= set(listed)
    assert view.exists(probe) in (True, False)
    try:
        value = view.getv(probe)
    except KeyNotFound as exc:
        assert exc.key == clean_key(probe)
    else:
        assert value == store.get(probe).value
        assert reads.depends_on(probe)
    Reads().depends_on(probe)


@settings(max_examples=100, deadline=None)
@given(keys=_keys)
def test_fuzz_literal_pattern_finds_exactly_that_key(keys: list[str]) -> None:
    store = KVStore({k: "v" for k in keys})
    for key in store.snapshot():
        if not any(c in key for c in "*?[\\"):
            assert [p.key for p in store.gets(key)] == [key]
