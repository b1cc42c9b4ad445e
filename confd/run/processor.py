"""Processing template resources: fetch keys, render, sync; one `Outcome` per resource.

`Processor.process(resource)` is the unit every run loop uses; `run_once` is the onetime
path. A failing resource is logged with its file and cause and never stops the others. A failed
backend read is retried (`RetryPolicy`: the fork's --retry-max-attempts, --retry-base-delay,
--retry-max-delay) before the render fails; a backend that failed every retry is read once per
resource, without retries, until it answers again, so a dead backend costs the delays once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, NamedTuple, Protocol

from confd.config.resource import TemplateResource, store_key
from confd.errors import BackendError, ConfdError
from confd.log import get_logger
from confd.sync import Status, SyncOptions, sync_file
from plugin_sdk.database import DatabaseError

if TYPE_CHECKING:
    from confd.template.renderer import Renderer
    from confd.template.store import Reads
    from plugin_sdk.database import Database

__all__ = ["Status", "Outcome", "Processor", "DatabaseSource", "RetryPolicy", "failure_summary"]

log = get_logger("processor")


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

    def read(self, database: Database, keys: Sequence[str]) -> dict[str, str]:
        """`database.get_values(keys)`, retried by the policy; `BackendError` when it fails."""
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
        from confd.template.store import KVStore

        fields = {"resource": str(resource.path), "dest": str(resource.dest)}
        reads = values = None
        try:
            database = self.databases.database(resource)
            values = self.read(database, resource.backend_keys())
            rendered = self.renderer.render(
                resource.src, KVStore(resource.to_store(values)), syntax=resource.syntax
            )
            reads = rendered.reads
            if resource.output_format:
                from confd.template.output_format import validate_output

                validate_output(rendered.text, resource.output_format)
            data = rendered.text.encode("utf-8", "surrogateescape")  # Go templates: raw bytes
            status = sync_file(data, resource, self.options, out=self._out)
        except ConfdError as exc:
            log.error("%s: %s", resource.path, exc, extra={"fields": fields})
            return Outcome(resource, Status.FAILED, exc, reads, values)
        except Exception as exc:  # noqa: BLE001 - one resource must not stop the others
            log.error("%s: unexpected %s: %s", resource.path, type(exc).__name__, exc,
                      exc_info=True, extra={"fields": fields})
            return Outcome(resource, Status.FAILED, exc, reads, values)
        return Outcome(resource, status, None, reads, values)

    def run_once(self, resources: Iterable[TemplateResource]) -> list[Outcome]:
        """Process every resource given, in order."""
        return [self.process(r) for r in resources]


def failure_summary(outcomes: Sequence[Outcome], load_errors: int = 0) -> str | None:
    """`"2 of 5 resources failed"`, or None when all succeeded; unloadable files count too."""
    failed = sum(o.failed for o in outcomes) + load_errors
    if not failed:
        return None
    total = len(outcomes) + load_errors
    return f"{failed} of {total} resource{'s' if total != 1 else ''} failed"
