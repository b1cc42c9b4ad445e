"""Processing template resources: fetch keys, render, sync; one `Outcome` per resource.

`Processor.process_many(resources)` is what every run loop uses: resources rendered together
share one read per database (`confd.run.shared_read`), templates missing from the compiled cache
are compiled ahead (in parallel when many), and the files of destinations without commands are
staged, made durable together (`confd.sync.sync_files`: one syncfs where that is safe) and then
renamed, each directory flushed once per batch. `process` is one resource on its own read;
`run_once` is the onetime path. A failing resource is logged with its file and cause and never
stops the others. A failed backend read is retried (`RetryPolicy`: the fork's
--retry-max-attempts, --retry-base-delay, --retry-max-delay) before the render fails; a backend
that failed every retry is read once per resource, without retries, until it answers again, so a
dead backend costs the delays once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, NamedTuple, Protocol

from confd.config.resource import TemplateResource, store_key
from confd.errors import BackendError, ConfdError
from confd.log import get_logger
from confd.sync import Status, SyncOptions, sync_file, sync_files
from plugin_sdk.database import DatabaseError

if TYPE_CHECKING:
    from confd.run.shared_read import SharedRead
    from confd.template.renderer import Renderer
    from confd.template.store import KVStore, Reads
    from plugin_sdk.database import Database

__all__ = ["Copied", "Copies", "Status", "Outcome", "Processor", "DatabaseSource",
           "RetryPolicy", "failure_summary"]

log = get_logger("processor")


class Copied(dict[str, str]):
    """Values a watch held (`WatchGroups.copy_of`), as `get_values` would have returned them,
    without reading the store."""


# What the watches hold of a database: `get_values(keys)` as of their last event, or None
# when they cannot vouch for every key (the store is read then).
Copies = Callable[["Database", Sequence[str]], "Copied | None"]

# A batch syncs its destinations together (`sync_files`: one flush for all) from this many
# resources up. Below it a file's own fsync costs less than what a group flush sets up (the
# syncfs call is ~2.4 ms of imports, once).
BATCH_SYNC_MIN = 16


class Outcome(NamedTuple):
    """The result of processing one resource, and what its render read (for watches).

    `reads` holds template keys (the prefix stripped); `depends_on` answers for database keys.
    """

    resource: TemplateResource
    status: Status
    error: Exception | None = None
    reads: Reads | None = None
    values: Mapping[str, str] | None = None  # the database values the render used

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    @property
    def changed(self) -> bool:
        return self.status is Status.CHANGED

    def depends_on(self, database_key: str) -> bool:
        """Could a change of `database_key` alter this output? (Unknown reads: yes.)"""
        if self.reads is None:
            return True
        return self.reads.depends_on(store_key(database_key, self.resource.prefix))


class RetryPolicy(NamedTuple):
    """How often and how patiently a failed backend read is tried again."""

    retries: int = 0  # reads after the first one fails
    base_delay: float = 0.1  # before the first retry; doubles per retry, jittered
    max_delay: float = 5.0


class DatabaseSource(Protocol):
    """Where a processor gets the database of a resource (the run's `Runtime`)."""

    def database(self, resource: TemplateResource) -> Database: ...


class _Staged(NamedTuple):
    """A rendered resource waiting for its sync."""

    resource: TemplateResource
    data: bytes
    reads: Reads
    values: Mapping[str, str] | None  # None: the watches' copies, nothing to fold back


class Processor:
    """Renders and syncs resources with one renderer, its databases and the run's options."""

    def __init__(
        self,
        renderer: Renderer,
        databases: DatabaseSource,
        options: SyncOptions | None = None,
        *,
        out: IO[str] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.renderer = renderer
        self.databases = databases
        self.options = options or SyncOptions()
        self.retry = retry or RetryPolicy()
        self._out = out
        self._sleep = sleep
        self._down: set[Database] = set()  # failed every retry; read once until they answer

    def read(self, database: Database, keys: Sequence[str],
             copies: Copies | None = None) -> dict[str, str]:
        """`database.get_values(keys)`, retried by the policy; `BackendError` when it fails.
        With `copies`, the values a watch holds for every key, when it does, without a read."""
        if copies is not None:
            held = copies(database, keys)
            if held is not None:
                return held
        retries = 0 if database in self._down else self.retry.retries
        backoff = None
        for attempt in range(retries + 1):
            try:
                values = database.get_values(keys)
            except DatabaseError as exc:
                if attempt == retries:
                    if retries:
                        self._down.add(database)
                    raise BackendError(str(exc)) from exc
                if backoff is None:
                    from confd.backoff import Backoff

                    policy = self.retry
                    backoff = Backoff(policy.base_delay, max(policy.max_delay, policy.base_delay))
                delay = backoff.next()
                log.debug("backend read failed (%s); retry %d of %d in %.2fs", exc,
                          attempt + 1, retries, delay)
                self._sleep(delay)
                continue
            self._down.discard(database)
            return values
        raise AssertionError("unreachable")  # the loop returns or raises

    def process(self, resource: TemplateResource) -> Outcome:
        """Render `resource` from fresh values and sync its destination; never raises."""
        return self._finish(self._render(resource, None))

    def process_many(self, resources: Iterable[TemplateResource],
                     copies: Copies | None = None) -> Iterator[Outcome]:
        """Render and sync `resources` as one batch; yields each outcome as it completes: in
        order, but for destinations synced together at the end (`sync_files`). Never raises
        for a resource.

        Every database is read once for the whole batch, or not at all where `copies` (the
        watches' copies of the store, after a change they reported) holds the keys;
        templates are compiled ahead.
        """
        batch = list(resources)
        if not batch:
            return
        with self.renderer.batch((r.src, r.syntax) for r in batch):
            yield from self._batch(batch, copies)

    def _batch(self, batch: list[TemplateResource],
               copies: Copies | None) -> Iterator[Outcome]:
        shared = self._shared_reads(batch, copies)
        together = self._together(batch)
        staged: list[_Staged] = []
        for resource in batch:
            rendered = self._render(resource, shared.get(resource), copies)
            if isinstance(rendered, _Staged) and resource in together:
                staged.append(rendered)
            else:
                yield self._finish(rendered)
        if not staged:
            return
        results = sync_files([(s.data, s.resource) for s in staged], self.options, out=self._out)
        for done, result in zip(staged, results, strict=True):
            if isinstance(result, Exception):
                yield self._failed(done.resource, result, done.reads, done.values)
            else:
                yield Outcome(done.resource, result, None, done.reads, done.values)

    def run_once(self, resources: Iterable[TemplateResource]) -> list[Outcome]:
        """Process every resource given; the outcomes in the order of `resources`."""
        batch = list(resources)
        done = {id(o.resource): o for o in self.process_many(batch)}
        return [done[id(r)] for r in batch]

    # -- the steps -----------------------------------------------------------------------------

    def _shared_reads(
        self, batch: Sequence[TemplateResource], copies: Copies | None = None
    ) -> dict[TemplateResource, SharedRead | Exception]:
        """One read per database for the resources of `batch` that share it; a resource on
        its own, or whose shared read failed, reads for itself (and reports its own error).
        A resource whose database cannot be opened gets that error, to report."""
        from confd.run.shared_read import SharedRead, shareable

        groups: dict[int, tuple[Database, list[TemplateResource]]] = {}
        shared: dict[TemplateResource, SharedRead | Exception] = {}
        for resource in batch:
            if not shareable(resource):
                continue
            try:
                database = self.databases.database(resource)
            except ConfdError as exc:
                shared[resource] = exc  # reported by its render, once per backend and load
                continue
            groups.setdefault(id(database), (database, []))[1].append(resource)
        for database, members in groups.values():
            if len(members) < 2:
                continue
            try:
                read = SharedRead.read(lambda keys, db=database: self.read(db, keys, copies),
                                       members)
            except Exception as exc:  # noqa: BLE001 - each resource then reads and reports
                log.debug("one read for %d resources failed (%s); each reads its own keys",
                          len(members), exc)
                continue
            for resource in members:
                shared[resource] = read
        return shared

    def _together(self, batch: Sequence[TemplateResource]) -> set[TemplateResource]:
        """The resources of `batch` to sync together once all are rendered: no command to run
        (those sync in order as they render), a destination no other resource of the batch
        writes, and no --noop diff to print."""
        if len(batch) < BATCH_SYNC_MIN or self.options.noop:
            return set()
        commands = not self.options.sync_only
        dests: dict[object, int] = {}
        for resource in batch:
            dests[resource.dest] = dests.get(resource.dest, 0) + 1
        together = {r for r in batch if dests[r.dest] == 1
                    and not (commands and (r.check_cmd or r.reload_cmd))}
        return together if len(together) >= BATCH_SYNC_MIN else set()

    def _render(self, resource: TemplateResource, shared: SharedRead | Exception | None,
                copies: Copies | None = None) -> _Staged | Outcome:
        """Read (or take from `shared`, or the watches' `copies`) and render `resource`; a
        failure is its `Outcome`. Values that came from the watches' copies are left out of
        it: the watches hold them already, and folding them back after newer events would
        only make the watches doubt them."""
        from confd.template.store import KVStore

        reads = values = None
        try:
            store: KVStore
            if isinstance(shared, Exception):
                raise shared
            if shared is not None:
                store, values = shared.for_resource(resource)
                if isinstance(shared.values, Copied):
                    values = None
            else:
                database = self.databases.database(resource)
                if copies is not None:
                    from confd.run.shared_read import shareable

                    if not shareable(resource):
                        copies = None  # backend-specific patterns: only the store knows
                values = self.read(database, resource.backend_keys(), copies)
                store = KVStore(resource.to_store(values))
                if isinstance(values, Copied):
                    values = None
            rendered = self.renderer.render(resource.src, store, syntax=resource.syntax)
            reads = rendered.reads
            if resource.output_format:
                from confd.template.output_format import validate_output

                validate_output(rendered.text, resource.output_format)
            data = rendered.text.encode("utf-8", "surrogateescape")  # Go templates: raw bytes
            return _Staged(resource, data, reads, values)
        except Exception as exc:  # noqa: BLE001 - one resource must not stop the others
            return self._failed(resource, exc, reads, values)

    def _sync(self, staged: _Staged) -> Outcome:
        """Bring the destination of `staged` in line; a failure is its Outcome."""
        resource = staged.resource
        try:
            status = sync_file(staged.data, resource, self.options, out=self._out)
        except Exception as exc:  # noqa: BLE001 - one resource must not stop the others
            return self._failed(resource, exc, staged.reads, staged.values)
        return Outcome(resource, status, None, staged.reads, staged.values)

    def _finish(self, staged: _Staged | Outcome) -> Outcome:
        return staged if isinstance(staged, Outcome) else self._sync(staged)

    @staticmethod
    def _failed(resource: TemplateResource, exc: Exception, reads: Reads | None,
                values: Mapping[str, str] | None) -> Outcome:
        fields = {"fields": {"resource": str(resource.path), "dest": str(resource.dest)}}
        if isinstance(exc, ConfdError):
            log.error("%s: %s", resource.path, exc, extra=fields)
        else:
            log.error("%s: unexpected %s: %s", resource.path, type(exc).__name__, exc,
                      exc_info=exc, extra=fields)
        return Outcome(resource, Status.FAILED, exc, reads, values)


def failure_summary(outcomes: Sequence[Outcome], load_errors: int = 0) -> str | None:
    """`"2 of 5 resources failed"`, or None when all succeeded; unloadable files count too."""
    failed = sum(o.failed for o in outcomes) + load_errors
    if not failed:
        return None
    total = len(outcomes) + load_errors
    return f"{failed} of {total} resource{'s' if total != 1 else ''} failed"
