"""`confd preflight` (the fork's `--preflight`): before a deploy, can every resource be read and
rendered? Nothing is written and no command runs.

For each resource: open its backend (unreachable: failed), read its keys (a backend error:
failed; a key with nothing under it: a warning, since a template may not need it), then render
the template into a throwaway buffer with the real values. A key the template reads with
`getv`/`get` and no default that the backend does not have fails the resource; every such key
is found (each missing one is given an empty stand-in and the render tried again), so one run
lists them all. Any other render error, or output that does not parse as the resource's
`output_format`, fails it too. The whole check is bounded by `--preflight-timeout`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import IO, NamedTuple

from confd.config.resource import TemplateResource, join_key
from confd.config.settings import Settings
from confd.errors import ConfdError
from confd.log import get_logger
from plugin_sdk.database import select_prefix

__all__ = ["Report", "check_resource", "run_preflight"]

log = get_logger("preflight")

_MAX_MISSING = 1000  # stand-ins tried before giving up on listing missing keys


class Report(NamedTuple):
    """What preflight found for one resource."""

    resource: TemplateResource
    backend: str = ""
    keys_read: int = 0
    missing: tuple[str, ...] = ()  # database keys the template needs and the backend lacks
    empty: tuple[str, ...] = ()  # resource keys with nothing under them
    error: str | None = None  # unreachable backend, or a render error other than a missing key

    @property
    def ok(self) -> bool:
        return not self.missing and self.error is None

    def lines(self) -> list[str]:
        name = self.resource.name
        if self.ok:
            head = [f"ok: {name}: {self.keys_read} key{'s' if self.keys_read != 1 else ''} "
                    f"read from {self.backend}, template renders"]
        else:
            problems = []
            if self.missing:
                problems.append("missing key" + ("s " if len(self.missing) > 1 else " ")
                                + ", ".join(self.missing))
            if self.error:
                problems.append(self.error)
            where = f" ({self.backend})" if self.backend else ""
            head = [f"FAILED: {name}{where}: {'; '.join(problems)}"]
        return head + [f"warning: {name}: nothing under {key}" for key in self.empty]


def _missing_key(exc: BaseException) -> str | None:
    """The key a render failed to find (`getv`/`get` without default), if that was why."""
    from confd.template.functions import FunctionError
    from confd.template.store import KeyNotFound

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, KeyNotFound):
            return cause.key
        if isinstance(cause, FunctionError) and isinstance(cause.cause, KeyNotFound):
            return cause.cause.key
        cause = cause.__cause__ or cause.__context__
    return None


def check_resource(runtime: object, resource: TemplateResource) -> Report:
    """Read and render `resource` as a run would, into nothing; never raises."""
    from confd.run.assembly import Runtime
    from confd.template.output_format import validate_output
    from confd.template.store import KVStore

    assert isinstance(runtime, Runtime)
    try:
        database = runtime.database(resource)
        backend = runtime.label(resource)
    except ConfdError as exc:
        return Report(resource, error=f"backend unreachable: {exc}")
    keys = resource.backend_keys()
    try:
        values = runtime.processor.read(database, keys)
    except ConfdError as exc:
        return Report(resource, backend, error=f"backend unreachable: {exc}")
    empty = tuple(k for k in keys if not any(select_prefix(v, k) for v in values))
    store = resource.to_store(values)
    missing: list[str] = []
    error: str | None = None
    for _ in range(_MAX_MISSING):
        try:
            text = runtime.renderer.render(resource.src, KVStore(store),
                                           syntax=resource.syntax).text
        except ConfdError as exc:
            key = _missing_key(exc)
            if key is None or key in store:
                error = str(exc)
                break
            missing.append(join_key(resource.prefix, key))
            store[key] = ""  # a stand-in, to find the next missing key
            continue
        if not missing:
            try:
                validate_output(text, resource.output_format)
            except ConfdError as exc:
                error = str(exc)
        break
    return Report(resource, backend, len(values), tuple(missing), empty, error)


def run_preflight(settings: Settings, names: Sequence[str] = (),
                  out: IO[str] | None = None) -> int:
    """Check every resource (or those `names` picks) within `settings.preflight_timeout`;
    print one report per resource and a summary; 0 when all pass, else 1."""
    import sys

    from confd.backends.pool import DatabasePool
    from confd.config.resource import select_resources
    from confd.run.assembly import Runtime

    out = out or sys.stdout
    runtime = Runtime(settings, DatabasePool(), out=out)
    resources = select_resources(runtime.resources, names, settings.resources_dir)
    load_errors = [] if names else [str(e) for e in runtime.load_errors]
    for message in load_errors:
        print(f"FAILED: {message}", file=out)
    reports: list[Report] = []
    current: list[TemplateResource] = []

    def work() -> None:
        for resource in resources:
            current[:] = [resource]
            report = check_resource(runtime, resource)
            reports.append(report)
            for line in report.lines():
                print(line, file=out, flush=True)
        current.clear()

    started = time.monotonic()
    worker = threading.Thread(target=work, name="preflight", daemon=True)
    worker.start()
    worker.join(settings.preflight_timeout)
    failed = sum(not r.ok for r in reports) + len(load_errors)
    total = len(resources) + len(load_errors)
    if worker.is_alive():
        busy = current[0].name if current else "?"
        print(f"preflight: timed out after {settings.preflight_timeout:g}s "
              f"(--preflight-timeout) while checking {busy}; "
              f"{len(resources) - len(reports)} of {len(resources)} resources not checked",
              file=out, flush=True)
        return 1  # the worker may hang in a backend call: leave it (a daemon thread)
    runtime.close()
    elapsed = time.monotonic() - started
    if failed:
        print(f"preflight: {failed} of {total} resource{'s' if total != 1 else ''} failed "
              f"({elapsed:.1f}s)", file=out)
        return 1
    print(f"preflight: {total} resource{'s' if total != 1 else ''} OK ({elapsed:.1f}s)",
          file=out)
    return 0
