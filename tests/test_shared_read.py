"""Resources rendered together share one read: each sees exactly what its own read would give.

The reference is the per-resource path (its own `get_values`, its own store): for any keys,
prefixes and values, a resource's part of the shared read must answer every template function
the same way, and hold the same database values.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from confd.config.resource import TemplateResource, join_key
from confd.run.shared_read import SharedRead, outermost, shareable
from confd.template.store import KVStore, KVView, Reads
from tests.dict_database import DictDatabase


class CountingDatabase(DictDatabase):
    name = "counting"

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.reads: list[list[str]] = []

    def get_values(self, keys):
        self.reads.append(list(keys))
        return super().get_values(keys)


def resource(name: str, prefix: str, keys: tuple[str, ...]) -> TemplateResource:
    return TemplateResource(path=Path(f"/conf.d/{name}.toml"), src=f"{name}.tmpl",
                            src_path=Path(f"/t/{name}.tmpl"), dest=Path(f"/out/{name}"),
                            keys=keys, prefix=join_key(prefix))


def answers(view: KVView, probes: list[str]) -> list[object]:
    """What templates would see: every function over every probe key and pattern."""
    out: list[object] = []
    for probe in probes:
        out.append(view.exists(probe))
        out.append(view.getv(probe, "<none>"))
        out.append(view.gets(probe + "/*"))
        out.append(view.getvs(probe + "/*"))
        out.append(view.ls(probe))
        out.append(view.lsdir(probe))
    return out


_names = st.sampled_from(["a", "b", "app", "app-x", "db", "x"])
_paths = st.lists(_names, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))
_odd = st.sampled_from(["/app//a", "/app/a/", "/db/./x"])  # keys a store cleans


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(st.one_of(_paths, _odd), st.sampled_from(["1", "2", "3"]), max_size=12),
    specs=st.lists(st.tuples(st.sampled_from(["/", "/app", "/db"]),
                             st.lists(_paths, min_size=1, max_size=3)), min_size=1, max_size=4),
    probes=st.lists(_paths, min_size=1, max_size=4),
)
def test_each_resource_sees_what_its_own_read_gives(
    data: dict[str, str], specs: list[tuple[str, list[str]]], probes: list[str]
) -> None:
    data.pop("/", None)
    db = CountingDatabase(data)
    resources = [resource(f"r{i}", prefix, tuple(keys)) for i, (prefix, keys) in enumerate(specs)]
    shared = SharedRead.read(db.get_values, resources)
    for r in resources:
        own_values = db.get_values(r.backend_keys())
        own = KVStore(r.to_store(own_values))
        store, values = shared.for_resource(r)
        assert dict(values) == own_values
        assert store.snapshot() == own.snapshot()
        assert len(store) == len(own)
        assert answers(store.view(Reads()), probes) == answers(own.view(Reads()), probes)


def test_one_read_for_the_batch_and_one_store_per_prefix_and_keys() -> None:
    values = {f"/p{p}/r{r}/k": f"{p}-{r}" for p in range(2) for r in range(3)}
    db = CountingDatabase(values)
    whole = [resource(f"w{p}{i}", f"/p{p}", ("/",)) for p in range(2) for i in range(3)]
    narrow = resource("n", "/p0", ("/r1",))
    shared = SharedRead.read(db.get_values, [*whole, narrow])
    assert db.reads == [["/p0", "/p1"]]  # /p0/r1 is inside /p0: not asked for twice
    stores = {id(shared.for_resource(r)[0]) for r in whole}
    assert len(stores) == 2  # one per prefix, whatever the number of resources
    store, narrow_values = shared.for_resource(narrow)
    assert narrow_values == {"/p0/r1/k": "0-1"}
    assert store.snapshot() == {"/r1/k": "0-1"}
    assert store.view().getv("/r0/k", "hidden") == "hidden"


def test_keys_with_glob_characters_read_on_their_own() -> None:
    assert shareable(resource("a", "/app", ("/db", "/x")))
    assert not shareable(resource("a", "/app", ("/db/*",)))


def test_outermost_keeps_only_keys_no_other_holds() -> None:
    assert outermost(["/app/x", "/app", "/application", "/db/", "/db/y"]) == {
        "/app", "/application", "/db"}
    assert outermost(["/a", "/"]) == {"/"}


def test_a_scoped_store_hides_what_lies_outside_its_roots() -> None:
    store = KVStore({"/app/a": "1", "/app/b/c": "2", "/apple": "3", "/db": "4"})
    view = store.scoped(["/app/b", "/db"]).view()
    assert view.getv("/app/a", "-") == "-"
    assert view.getv("/db") == "4"
    assert [kv.key for kv in view.gets("/app/*/*")] == ["/app/b/c"]
    assert view.ls("/") == ["app", "db"]
    assert view.ls("/app") == ["b"]
    assert store.scoped(["/"]).snapshot() == store.snapshot()
    narrowed = store.scoped(["/app"]).scoped(["/app/b", "/db"])
    assert narrowed.snapshot() == {"/app/b/c": "2"}
