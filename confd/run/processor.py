"""Processing template resources: fetch keys, render, sync; one `Outcome` per resource.

`Processor.process(resource)` is the unit every run loop uses; `run_once` is the onetime
path. A failing resource is logged with its file and cause and never stops the others.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, NamedTuple, Protocol

from confd.config.resource import TemplateResource
from confd.errors import BackendError, ConfdError
from confd.log import get_logger
from confd.sync import SyncOptions, SyncResult, Target, sync_file
from plugin_sdk.database import DatabaseError

if TYPE_CHECKING:
    from confd.template.renderer import Renderer
    from confd.template.store import Reads
    from plugin_sdk.database import Database

__all__ = ["Status", "Outcome", "Processor", "DatabaseSource", "failure_summary"]

log = get_logger("processor")


class Status(enum.Enum):
    """How processing a resource ended."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NOOP = "noop"  # out of sync, but --noop only showed the diff
    FAILED = "failed"


class Outcome(NamedTuple):
    """The result of processing one resource, and the keys its render read (for watches)."""

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


class DatabaseSource(Protocol):
    """Where a processor gets the database of a resource (`confd.backends.DatabasePool`)."""

    def for_resource(self, resource: TemplateResource) -> Database: ...


_STATUS = {
    SyncResult.CHANGED: Status.CHANGED,
    SyncResult.UNCHANGED: Status.UNCHANGED,
    SyncResult.NOOP: Status.NOOP,
}


def target_of(resource: TemplateResource) -> Target:
    """The sync target a resource describes."""
    return Target(
        dest=resource.dest,
        mode=resource.mode,
        uid=resource.uid,
        gid=resource.gid,
        check_cmd=resource.check_cmd,
        reload_cmd=resource.reload_cmd,
        check_cmd_timeout=resource.check_cmd_timeout,
        reload_cmd_timeout=resource.reload_cmd_timeout,
    )


class Processor:
    """Holds the resources, the renderer and the databases; renders and syncs on request."""

    def __init__(
        self,
        resources: Sequence[TemplateResource],
        renderer: Renderer,
        databases: DatabaseSource,
        options: SyncOptions | None = None,
        *,
        out: IO[str] | None = None,
    ) -> None:
        self.resources = list(resources)
        self.renderer = renderer
        self.databases = databases
        self.options = options or SyncOptions()
        self._out = out

    def process(self, resource: TemplateResource) -> Outcome:
        """Render `resource` from fresh values and sync its destination; never raises."""
        from confd.template.store import KVStore

        fields = {"resource": str(resource.path), "dest": str(resource.dest)}
        reads = values = None
        try:
            database = self.databases.for_resource(resource)
            try:
                values = database.get_values(resource.backend_keys())
            except DatabaseError as exc:
                raise BackendError(str(exc)) from exc
            rendered = self.renderer.render(resource.src, KVStore(resource.to_store(values)))
            reads = rendered.reads
            result = sync_file(rendered.text.encode(), target_of(resource), self.options,
                               out=self._out)
        except ConfdError as exc:
            log.error("%s: %s", resource.path, exc, extra={"fields": fields})
            return Outcome(resource, Status.FAILED, exc, reads, values)
        except Exception as exc:  # noqa: BLE001 - one resource must not stop the others
            log.error("%s: unexpected %s: %s", resource.path, type(exc).__name__, exc,
                      exc_info=True, extra={"fields": fields})
            return Outcome(resource, Status.FAILED, exc, reads, values)
        return Outcome(resource, _STATUS[result], None, reads, values)

    def run_once(self, resources: Iterable[TemplateResource] | None = None) -> list[Outcome]:
        """Process every resource (or those given) in order."""
        return [self.process(r) for r in (self.resources if resources is None else resources)]


def failure_summary(outcomes: Sequence[Outcome], load_errors: int = 0) -> str | None:
    """`"2 of 5 resources failed"`, or None when all succeeded; unloadable files count too."""
    failed = sum(o.failed for o in outcomes) + load_errors
    if not failed:
        return None
    total = len(outcomes) + load_errors
    return f"{failed} of {total} resource{'s' if total != 1 else ''} failed"
