"""How a backend turns the keys confd asks for into the keys it reads and watches.

confd's resources may write a key as `/app/*` ("everything below /app"); backends read `/app`
with prefix semantics instead. Go confd's redis and zookeeper backends strip *every* `/*`
(`/app/*/db` reads `/app/db`), its other backends none; backends that want Go's meaning pass
`every_wildcard=True`.
"""

from __future__ import annotations

from collections.abc import Sequence

from plugin_sdk.database import select_prefix

__all__ = ["normalize_keys", "outermost_keys"]


def normalize_keys(keys: Sequence[str], *, every_wildcard: bool = False) -> list[str]:
    """Requested keys without confd's `/*` (a trailing one, or every one with
    `every_wildcard`), duplicates dropped, order kept; an emptied key is `/`."""
    if every_wildcard:
        cleaned = (k.replace("/*", "") or "/" for k in keys)
    else:
        cleaned = (k.removesuffix("/*") or "/" for k in keys)
    return list(dict.fromkeys(cleaned))


def outermost_keys(keys: Sequence[str], *, every_wildcard: bool = False) -> list[str]:
    """The normalized keys not already below another one: what a watch must cover."""
    wanted = normalize_keys(keys, every_wildcard=every_wildcard)
    return [k for k in wanted if not any(o != k and select_prefix(k, o) for o in wanted)]
