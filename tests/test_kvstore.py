"""The KV store behaves as Go confd's memkv: lookups, globs, listings, and read recording."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confd.template.store import (
    BadPattern,
    KeyNotFound,
    KVPair,
    KVStore,
    KVView,
    Reads,
    clean_key,
)

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
def deis() -> KVView:
    return KVStore(DEIS).view()


@pytest.fixture
def app() -> KVView:
    return KVStore(APP).view()


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
def test_get(app: KVView, key: str, want: KVPair) -> None:
    assert app.get(key) == want


@pytest.mark.parametrize("key", ["/missing", "/app", "/app/db", "/app/port/x"])
def test_get_missing_key_raises_key_not_found(app: KVView, key: str) -> None:
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
def test_getv(app: KVView, key: str, default: str | None, want: str) -> None:
    assert app.getv(key, default) == want


def test_getv_without_default_raises_for_missing_key(app: KVView) -> None:
    with pytest.raises(KeyNotFound, match='key "/nope" not found'):
        app.getv("/nope")


def test_empty_value_is_a_value_not_a_missing_key() -> None:
    store = KVStore({"/empty": ""}).view()
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
    app: KVView, pattern: str, want: list[tuple[str, str]]
) -> None:
    assert app.gets(pattern) == [KVPair(k, v) for k, v in want]


@pytest.mark.parametrize("pattern", ["[]a]", "/app/\\", "/app/[a", "/app/[a-", "/app/[^]", "[-a]"])
def test_gets_with_bad_pattern_raises_bad_pattern(app: KVView, pattern: str) -> None:
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
def test_getvs_sorted_by_value(app: KVView, pattern: str, want: list[str]) -> None:
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
def test_exists(app: KVView, key: str, want: bool) -> None:
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
def test_ls(deis: KVView, path: str, want: list[str]) -> None:
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
def test_lsdir(deis: KVView, path: str, want: list[str]) -> None:
    assert deis.lsdir(path) == want


def test_keys_are_cleaned_when_the_store_is_made() -> None:
    store = KVStore({"//a/b/": "1", "/a/c": "2"})
    assert store.snapshot() == {"/a/b": "1", "/a/c": "2"}
    assert store.view().ls("/a") == ["b", "c"]


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


def test_a_view_without_reads_records_nothing_and_views_are_independent() -> None:
    store = KVStore(APP)
    first, second = Reads(), Reads()
    store.view(first).getv("/app/port")
    store.view(second).getv("/app/url")
    store.view().getv("/app/db/user")
    assert (first.keys, second.keys) == ({"/app/port"}, {"/app/url"})


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
        assert all(view.exists(p.key) for p in pairs)
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
        assert value == store.view().get(probe).value
        assert reads.depends_on(probe)
    Reads().depends_on(probe)


@settings(max_examples=100, deadline=None)
@given(keys=_keys)
def test_fuzz_literal_pattern_finds_exactly_that_key(keys: list[str]) -> None:
    store = KVStore({k: "v" for k in keys})
    for key in store.snapshot():
        if not any(c in key for c in "*?[\\"):
            assert [p.key for p in store.view().gets(key)] == [key]
