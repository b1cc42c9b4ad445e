"""One database read shared by every resource rendered together.

A full pass (start, SIGHUP, an interval tick, onetime) or a change read by many resources renders
them as one batch. The batch reads each database once, for the union of its resources' keys (one
revision: one etcd transaction), and every resource's store is that read's values under its
prefix: one `KVStore` per prefix shared by the resources that asked for the same keys, a
`KVStore.scoped` view of it for a resource that asked for fewer. With 1,000 resources on 20
prefixes, each reading its whole prefix, a pass decodes 10,000 keys instead of 500,000 and holds
20 stores instead of 1,000 (issue #13).

What a resource sees is exactly what its own `get_values` would have returned at that revision:
the contract's prefix semantics (a key holds itself and what lies below it) make the union's
values under a resource's keys the same values. Keys with glob characters are backend-specific,
so a resource using them reads on its own.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence

from confd.config.resource import TemplateResource, store_key
from confd.template.store import KVStore
from plugin_sdk.keys import outermost_keys

__all__ = ["SharedRead", "outermost", "shareable"]

_GLOB = frozenset("*?[\\")


def shareable(resource: TemplateResource) -> bool:
    """Whether `resource` can read through a shared read (plain keys, no backend globs)."""
    return not any(_GLOB.intersection(key) for key in resource.backend_keys())


def outermost(keys: Iterable[str]) -> frozenset[str]:
    """`keys` without those another of them already holds (`/app` holds `/app/x`)."""
    return frozenset(outermost_keys(list(keys)))


class _Part:
    """The values of one prefix and set of keys, as one store shared by the resources that
    asked for exactly those keys."""

    __slots__ = ("exact", "store", "values")

    def __init__(self, values: Mapping[str, str], prefix: str) -> None:
        self.values = values
        data = {}
        exact = True
        base = "" if prefix == "/" else prefix
        for key, value in values.items():
            in_store = store_key(key, prefix)
            if exact and not (key == prefix or (key.startswith(base + "/")
                                                and in_store == key[len(base):])):
                exact = False  # a key not spelled cleanly below the prefix: no scoped views
            data[in_store] = value
        self.store = KVStore(data)
        self.exact = exact


class SharedRead:
    """The values of one `get_values` over several resources' keys, handed out per resource."""

    def __init__(self, wanted: dict[str, frozenset[str]], keys: frozenset[str],
                 values: dict[str, str]) -> None:
        self.values = values
        self.keys = keys  # the outermost of every key asked: what was read
        self._wanted = wanted  # prefix -> the outermost keys its resources asked
        self._order: list[str] | None = None  # the keys of `values`, sorted
        self._position: dict[str, int] | None = None  # each key's place in `values`
        self._parts: dict[tuple[str, frozenset[str]], _Part] = {}

    @classmethod
    def read(cls, get_values: Callable[[list[str]], dict[str, str]],
             resources: Sequence[TemplateResource]) -> SharedRead:
        """Read the union of the keys of `resources` (all on one database) once, with
        `get_values` (the database's, or the processor's retrying read of it)."""
        by_prefix: dict[str, set[str]] = {}
        for resource in resources:
            by_prefix.setdefault(resource.prefix, set()).update(resource.backend_keys())
        wanted = {prefix: outermost(keys) for prefix, keys in by_prefix.items()}
        keys = outermost(k for prefix_keys in wanted.values() for k in prefix_keys)
        return cls(wanted, keys, get_values(sorted(keys)))

    def for_resource(self, resource: TemplateResource) -> tuple[KVStore, Mapping[str, str]]:
        """The store `resource` renders from and the database values it holds.

        Resources of one prefix that asked for the same keys get the same objects (the daemon
        folds each distinct read into the watch baselines once).
        """
        prefix = resource.prefix
        wanted = self._wanted[prefix]
        part = self._part(prefix, wanted)
        own = outermost(resource.backend_keys())
        if own == wanted:
            return part.store, part.values
        values = self._under(own)
        base = "" if prefix == "/" else prefix
        if part.exact and all(k == prefix or k.startswith(base + "/") for k in own):
            return part.store.scoped(store_key(k, prefix) for k in own), values
        return KVStore({store_key(k, prefix): v for k, v in values.items()}), values

    def _part(self, prefix: str, keys: frozenset[str]) -> _Part:
        part = self._parts.get((prefix, keys))
        if part is None:
            values = self.values if keys == self.keys else self._under(keys)
            part = self._parts[(prefix, keys)] = _Part(values, prefix)
        return part

    def _under(self, roots: Iterable[str]) -> dict[str, str]:
        """The values at or below `roots` (outermost keys), found by bisection, in the order
        the database returned them (two keys a store cleans alike, `/a//b` and `/a/b/`, then
        resolve as in the resource's own read)."""
        order = self._order
        if order is None:
            order = self._order = sorted(self.values)
        values = self.values
        found: list[str] = []
        for root in roots:
            if root == "/":
                return dict(values)
            if root in values:
                found.append(root)
            start = bisect_left(order, root + "/")
            end = bisect_left(order, root + "0", start)  # "0" follows "/": the subtree's end
            found.extend(order[start:end])
        if self._position is None:
            self._position = {key: i for i, key in enumerate(values)}
        position = self._position
        found.sort(key=position.__getitem__)
        return {key: values[key] for key in found}
