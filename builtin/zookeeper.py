"""The ZooKeeper backend, with kazoo, reading znodes the way Go confd does.

Reads are recursive walks: a requested key that is a leaf (a znode without children) gives its
data as the value, even when empty; a znode with children gives no value of its own (its data
is ignored, as Go confd's `nodeWalk`), only the leaves below it. `/app` never reaches
`/application` (ZooKeeper is a tree, not string prefixes). A key that does not exist gives
nothing (Go confd fails the whole run there instead). Walks are pipelined: each level of the
tree is one batch of requests in flight, not one round trip per znode. Walking `/` includes
ZooKeeper's own `/zookeeper/...` znodes, as in Go confd.

Watches are ZooKeeper's own: a child watch on every znode of the watched subtrees and a data
watch on every leaf, each set by the very read that returns what it guards, so nothing can
change unseen between a read and its watch. A fired watch is re-armed by re-reading its znode
(new children are walked, vanished ones dropped), then the values are diffed with the last ones
reported and the changed keys are yielded with their new values (None: deleted). A watched key
that does not exist yet gets an exists watch, so its creation is seen.

kazoo drops every watch when the connection breaks, so after each reconnect (same session, or a
new one after the session expired) the watch re-reads its subtrees, arming all watches again,
and reports whatever changed meanwhile. A connection that stays down longer than `timeout` plus
`session_timeout` (kazoo may wait that long for a starting server's handshake) ends the watch
with an error naming the nodes; kazoo keeps reconnecting in the background and the daemon's
resync finds the changes.

The session timeout defaults to 4 s: what Go confd gets from a server with the default 2 s tick
(it asks for 1 s; servers grant at least 2 ticks). Sessions hold no ephemeral znodes here, so a
short one costs only a re-read after a longer outage, and it bounds kazoo's handshake wait.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, WatchedEvent

from plugin_sdk.database import (
    Database,
    DatabaseError,
    LastReads,
    Setting,
    changed_values,
    idle_wait,
    select_prefix,
    when_stopped,
)
from plugin_sdk.keys import normalize_keys, outermost_keys

_RESYNC = "resync"  # connected again: every watch was dropped, re-read and re-arm everything
_SUSPENDED = "suspended"  # connection lost; kazoo is reconnecting
_WAKE = "wake"  # the watch was stopped or the backend closed: look
_DOWN_TICK = 0.2  # s between looks at the reconnect's grace deadline while the connection is down


class _Disconnected(DatabaseError):
    """A request failed because the connection is down (kazoo is reconnecting)."""


def _child(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def _parent(path: str) -> str:
    return path.rpartition("/")[0] or "/"


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


@dataclass
class _Tree:
    """What a watch knows of its subtrees: each walked znode's children, each leaf's value."""

    roots: list[str]
    kids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    def drop(self, path: str) -> None:
        """Forget `path` and everything below it."""
        for name in self.kids.pop(path, ()):
            self.drop(_child(path, name))
        self.values.pop(path, None)

    def known(self, path: str) -> bool:
        """True when `path` is a root or a child its parent was last seen holding."""
        if path in self.roots:
            return True
        parent = _parent(path)
        return path.rpartition("/")[2] in self.kids.get(parent, ())


@dataclass
class _Watcher:
    """One running `watch_prefix`: its subtrees and the queue its ZooKeeper events go to."""

    roots: list[str]
    events: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)

    def covers(self, path: str) -> bool:
        return any(select_prefix(path, root) for root in self.roots)


class ZooKeeperDatabase(Database):
    """Keys and values from ZooKeeper znodes, watched with data and child watches."""

    name = "zookeeper"
    description = "ZooKeeper znodes (Go confd's leaf semantics, native data/child watches)"
    can_watch = True
    settings = (
        Setting("nodes", list, ["127.0.0.1:2181"], "ZooKeeper servers (host:port), any order"),
        Setting("timeout", float, 5.0, "seconds to wait to connect and for each answer"),
        Setting(
            "session_timeout", float, 4.0,
            "ZooKeeper session timeout in seconds (the server bounds it to 2..20 ticks)",
        ),
    )  # fmt: skip

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        nodes: list[str] = opts["nodes"]
        if not nodes:
            raise DatabaseError("setting 'nodes' is empty")
        for node in nodes:
            host, _, port = node.rpartition(":")
            if "/" in node or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise DatabaseError(
                    f"node {node!r} is not host:port"
                )
        if opts["timeout"] <= 0 or opts["session_timeout"] <= 0:
            raise DatabaseError(
                "settings 'timeout' and 'session_timeout' must be above 0"
            )
        self._hosts = ",".join(nodes)
        self._timeout: float = opts["timeout"]
        self._grace: float = opts["timeout"] + opts["session_timeout"]
        self._lock = threading.Lock()  # the watcher list; never held while waiting
        self._connecting = threading.Lock()
        self._client: KazooClient | None = None
        self._live = threading.Event()  # set while connected
        self._watchers: list[_Watcher] = []
        self._reads = LastReads()  # what each key held: a watch starts from there
        self._closed = False

    # --- connection ---------------------------------------------------------------------------

    def _zk(self) -> KazooClient:
        """The connected client (started on first use); waits up to `timeout` for a server."""
        with self._connecting:
            if self._closed:
                raise DatabaseError("used after close")
            client = self._client
            if client is None:
                self._probe()
                client = KazooClient(
                    hosts=self._hosts,
                    timeout=self.options["session_timeout"],
                    # kazoo's default backoff grows to an hour; a restarted server is found
                    # within two seconds instead.
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 2.0},
                )
                client.add_listener(self._on_state)
                try:
                    client.start(timeout=self._timeout)
                except KazooTimeoutError:
                    client.close()  # start() stopped it already
                    raise DatabaseError(
                        f"no server answered within {self._timeout:g}s "
                        f"(nodes: {self._hosts})"
                    ) from None
                self._client = client
        if not self._live.wait(self._timeout):
            raise DatabaseError(
                f"connection lost and no server answered within "
                f"{self._timeout:g}s (nodes: {self._hosts})"
            )
        return client

    def _probe(self) -> None:
        """Fail at once when every node refuses the connection or has no address (kazoo would
        retry until `timeout`, once per resource of a `--onetime` run); any other outcome is
        left to kazoo."""
        reasons = []
        for node in self.options["nodes"]:
            host, _, port = node.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), self._timeout):
                    return
            except ConnectionRefusedError:
                reasons.append(f"{node}: connection refused")
            except socket.gaierror:
                reasons.append(f"{node}: unknown host")
            except OSError:
                return
        raise DatabaseError(f"no server answered ({'; '.join(reasons)})")

    def _on_state(self, state: str) -> None:
        """kazoo's connection listener (its own thread; must not block)."""
        if state == KazooState.CONNECTED:
            self._live.set()
            marker = _RESYNC
        else:  # SUSPENDED (reconnecting) or LOST (session expired; a new one follows)
            self._live.clear()
            marker = _SUSPENDED
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.events.put((marker, ""))

    def _on_event(self, event: WatchedEvent) -> None:
        """Every znode watch of this backend calls this one function (so kazoo keeps one watch
        per znode and kind, however often a read re-arms it); it routes the event to the
        watches whose subtrees hold the znode."""
        if event.type == EventType.NONE or not event.path:
            return  # kazoo dropping watches on disconnect: the state listener handles that
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            if watcher.covers(event.path):
                watcher.events.put((event.type, event.path))

    def _result(self, pending: Any, path: str) -> Any:
        """Wait for one kazoo request; NoNodeError passes, every other failure is explained."""
        try:
            return pending.get(timeout=self._timeout)
        except NoNodeError:
            raise
        except KazooTimeoutError:
            raise _Disconnected(
                f"no answer within {self._timeout:g}s reading {path!r} "
                f"(nodes: {self._hosts})"
            ) from None
        except (ConnectionLoss, SessionExpiredError, ConnectionClosedError) as exc:
            raise _Disconnected(
                f"connection lost reading {path!r} "
                f"(nodes: {self._hosts}): {type(exc).__name__}"
            ) from None
        except NoAuthError:
            raise DatabaseError(
                f"permission denied reading {path!r} (znode ACL)"
            ) from None
        except (KazooException, ValueError) as exc:
            raise DatabaseError(
                f"reading {path!r} failed: {type(exc).__name__}"
            ) from None

    # --- reads --------------------------------------------------------------------------------

    def _walk(
        self, client: KazooClient, tree: _Tree, paths: Iterable[str], watch: bool
    ) -> None:
        """Read the subtrees at `paths` into `tree`, one pipelined batch per tree level.

        With `watch`, a znode's children are read first (arming its child watch, which a leaf
        needs too: it fires when the leaf gains a child), then each leaf's data (arming its
        data watch). Without, each znode's data comes first and its stat says whether it has
        children, so a leaf costs one request instead of two. Measured on loopback, 1000 leaves
        in 20 folders: 135-290 ms, against 450-570 ms for Go confd's one request after another
        (a remote server adds a round trip per tree level here, per znode there).
        """
        if not watch:
            self._read(client, tree, list(paths))
            return
        frontier = list(paths)
        while frontier:
            asked = [(p, client.get_children_async(p, watch=self._on_event)) for p in frontier]
            frontier, leaves = [], []
            for path, pending in asked:
                try:
                    children = self._result(pending, path)
                except NoNodeError:
                    tree.drop(path)
                    continue
                tree.kids[path] = tuple(children)
                if children:
                    tree.values.pop(path, None)  # a znode with children has no value
                    frontier.extend(_child(path, c) for c in children)
                elif path != "/":
                    leaves.append(path)
            got = [(p, client.get_async(p, watch=self._on_event)) for p in leaves]
            for path, pending in got:
                try:
                    data, _ = self._result(pending, path)
                except NoNodeError:
                    tree.drop(path)
                    continue
                tree.values[path] = _decode(data)

    def _read(self, client: KazooClient, tree: _Tree, frontier: list[str]) -> None:
        """The unwatched walk: data and stat of a level, then the children of its non-leaves."""
        while frontier:
            got = [(p, client.get_async(p)) for p in frontier]
            parents = []
            for path, pending in got:
                try:
                    data, stat = self._result(pending, path)
                except NoNodeError:
                    continue
                if stat.numChildren or path == "/":
                    parents.append(path)
                else:
                    tree.values[path] = _decode(data)
            asked = [(p, client.get_children_async(p)) for p in parents]
            frontier = []
            for path, pending in asked:
                try:
                    children = self._result(pending, path)
                except NoNodeError:
                    continue
                frontier.extend(_child(path, c) for c in children)

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = normalize_keys(keys, every_wildcard=True)
        client = self._zk()
        tree = _Tree(wanted)
        self._walk(client, tree, wanted, watch=False)
        self._reads.remember(wanted, tree.values)
        return dict(tree.values)

    # --- watch --------------------------------------------------------------------------------

    def _arm_root(self, client: KazooClient, tree: _Tree, root: str) -> None:
        """Watch for a missing root's creation; walk it if it appeared meanwhile."""
        try:
            stat = self._result(client.exists_async(root, watch=self._on_event), root)
        except NoNodeError:
            stat = None
        if stat is not None:
            self._walk(client, tree, [root], watch=True)

    def _refresh(self, client: KazooClient, tree: _Tree, path: str, data_only: bool) -> None:
        """Re-read `path` after one of its watches fired, re-arming them."""
        if not tree.known(path):
            return  # gone from the tree since; its parent's watch covers it
        if data_only and path in tree.values:
            try:
                data, _ = self._result(client.get_async(path, watch=self._on_event), path)
            except NoNodeError:
                tree.drop(path)
                return
            tree.values[path] = _decode(data)
            return
        before = set(tree.kids.get(path, ()))
        try:
            children = self._result(client.get_children_async(path, watch=self._on_event), path)
        except NoNodeError:
            tree.drop(path)
            if path in tree.roots:
                self._arm_root(client, tree, path)
            return
        for gone in before - set(children):
            tree.drop(_child(path, gone))
        tree.kids[path] = tuple(children)
        if children:
            tree.values.pop(path, None)
            fresh = [_child(path, c) for c in children if c not in before]
            self._walk(client, tree, fresh, watch=True)
        elif path != "/":
            try:
                data, _ = self._result(client.get_async(path, watch=self._on_event), path)
            except NoNodeError:
                tree.drop(path)
                return
            tree.values[path] = _decode(data)

    def _full_read(self, client: KazooClient, roots: list[str]) -> _Tree:
        tree = _Tree(roots)
        self._walk(client, tree, roots, watch=True)
        for root in roots:
            if root not in tree.kids:
                self._arm_root(client, tree, root)
        return tree

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        roots = outermost_keys(keys or [prefix], every_wildcard=True)
        baseline = self._reads.held(roots)
        client = self._zk()
        watcher = _Watcher(roots)
        with self._lock:
            self._watchers.append(watcher)  # before the first read: no event can slip by
        forget = when_stopped(stop, lambda: watcher.events.put((_WAKE, "")))
        idle = idle_wait(stop)  # a stop and close() wake the wait
        try:
            tree = _Tree(roots)
            reported = baseline  # None: nothing read yet, the first full read is the baseline
            resync = True  # read everything (again), arming every watch
            down_since: float | None = None  # the connection broke; kazoo is reconnecting
            while not (stop.is_set() or self._closed):
                if down_since is not None and time.monotonic() - down_since > self._grace:
                    raise DatabaseError(
                        f"connection lost watching {prefix!r} and no "
                        f"server answered within {self._grace:g}s (nodes: {self._hosts})"
                    )
                if resync and down_since is None:
                    try:
                        tree = self._full_read(client, roots)
                        resync = False
                    except _Disconnected:
                        down_since = time.monotonic()
                        continue
                else:
                    try:
                        batch = [watcher.events.get(
                            timeout=idle if down_since is None else _DOWN_TICK)]
                    except queue.Empty:
                        continue
                    while True:  # take what else is queued: one re-read and diff for a burst
                        try:
                            batch.append(watcher.events.get_nowait())
                        except queue.Empty:
                            break
                    batch = [event for event in batch if event[0] != _WAKE]
                    for kind, _ in batch:
                        if kind == _SUSPENDED:
                            down_since, resync = down_since or time.monotonic(), True
                        elif kind == _RESYNC:
                            down_since, resync = None, True
                    if resync or down_since is not None or not batch:
                        continue
                    try:
                        self._apply(client, tree, batch)
                    except _Disconnected:
                        down_since, resync = time.monotonic(), True
                        continue
                current = dict(tree.values)
                if reported is not None:
                    changed = changed_values(reported, current)
                    if changed:
                        yield changed
                reported = current
        except DatabaseError:
            if stop.is_set() or self._closed:
                return
            raise
        finally:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)
            if forget is not None:
                forget()

    def _apply(self, client: KazooClient, tree: _Tree, batch: list[tuple[str, str]]) -> None:
        """Re-read the znodes whose watches fired, parents first; a data change alone needs
        only the data read again."""
        data_only: dict[str, bool] = {}
        for kind, path in batch:
            if kind in (_RESYNC, _SUSPENDED):
                continue
            data_only[path] = data_only.get(path, True) and kind == EventType.CHANGED
        for path in sorted(data_only):
            self._refresh(client, tree, path, data_only[path])

    def close(self) -> None:
        if not hasattr(self, "_lock"):
            return  # never configured
        with self._connecting:
            self._closed = True
            client, self._client = self._client, None
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:  # they return at once
            watcher.events.put((_WAKE, ""))
        if client is not None:
            client.remove_listener(self._on_state)
            try:
                client.stop()
            finally:
                client.close()
