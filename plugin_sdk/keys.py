"""How a backend turns the keys confd asks for into the keys it reads and watches.

confd's resources may write a key as `/app/*` ("everything below /app"); backends read `/app`
with prefix semantics instead. Go confd's redis and zookeeper backends strip *every* `/*`
(`/app/*/db` reads `/app/db`), its other backends none; backends that want Go's meaning pass
`every_wildcard=True`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["normalize_keys", "outermost_keys"]


def normalize_keys(keys: Sequence[str], *, every_wildcard: bool = False) -> list[str]:
    """Requested keys without confd's `/*` (a trailing one, or every one with
    `every_wildcard`) and a trailing `/`, duplicates dropped, order kept; an emptied key is `/`."""
    if every_wildcard:
        cleaned = (k.replace("/*", "").rstrip("/") or "/" for k in keys)
    else:
        cleaned = (k.removesuffix("/*").rstrip("/") or "/" for k in keys)
    return list(dict.fromkeys(cleaned))


def outermost_keys(keys: Sequence[str], *, every_wildcard: bool = False) -> list[str]:
    """The normalized keys not already below another one (what a read or a watch must cover),
    in the order given; O(keys x depth), for the thousands of keys of a large pass."""
    wanted = normalize_keys(keys, every_wildcard=every_wildcard)
    kept: set[str] = set()
    for key in sorted(wanted, key=len):
        if not covered(key, kept):
            kept.add(key)
    return [k for k in wanted if k in kept]


def covered(key: str, roots: Collection[str]) -> bool:
    """Whether `key` equals, or lies below, one of `roots` (`/app` holds `/app/x`, not
    `/application`; `/` holds everything)."""
    probe = key
    while True:
        if probe in roots:
            return True
        if probe == "/" or not probe:
            return False
        probe = probe.rpartition("/")[0] or "/"
