"""The daemon's metrics and health: counters by resource, backend and prefix, readiness and
backend problems, as Prometheus text. `confd.observe.endpoint` serves them on `--metrics-addr`;
this module imports no HTTP code, so a daemon without the endpoint does not pay for it.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable

_COUNTERS = {
    "confd_renders_total": ("resource", "Template renders that succeeded, by resource."),
    "confd_render_failures_total": ("resource", "Renders, checks or writes that failed."),
    "confd_reloads_total": ("resource", "Destination files replaced and reloaded."),
    "confd_backend_errors_total": ("backend", "Errors reading or watching a backend."),
    "confd_watch_reconnects_total": ("prefix", "Watches re-established after an error."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and gauges of one confd process; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[str, float]] = {
            name: defaultdict(float) for name in _COUNTERS
        }
        self._last_success: dict[str, float] = {}
        self._pending: set[str] = set()  # resources not rendered yet
        self._expected = False
        self._stopping = False
        self._failing: dict[str, str] = {}  # "backend:prefix" -> error
        self.worker_alive = True

    def expect(self, resources: Iterable[str]) -> None:
        """The resources of a (re)load: those never rendered keep `/ready` at 503."""
        with self._lock:
            names = set(resources)
            self._pending = {n for n in names if n not in self._last_success}
            self._expected = True

    def stopping(self) -> None:
        """The daemon is shutting down: not ready any more."""
        self._stopping = True

    @property
    def ready(self) -> bool:
        """True once every resource of the current configuration rendered at least once."""
        with self._lock:
            return self._ready()

    def _ready(self) -> bool:  # the lock held
        return self._expected and not self._pending and not self._stopping

    def not_ready(self) -> list[str]:
        """The resources that have not rendered yet."""
        with self._lock:
            return sorted(self._pending)

    @property
    def healthy(self) -> bool:
        """The render thread runs and no backend is failing."""
        with self._lock:
            return self.worker_alive and not self._failing

    def backend_state(self, backend: str, where: str, error: BaseException | None) -> None:
        """A watch on `where` (`backend:prefix`) failed (`error`) or recovered (None)."""
        with self._lock:
            if error is None:
                self._failing.pop(where, None)
            else:
                self._failing[where] = f"{type(error).__name__}: {error}"

    def problems(self) -> list[str]:
        """Why `/health` fails: a dead render thread, each failing backend watch."""
        with self._lock:
            found = [] if self.worker_alive else ["the render thread has stopped"]
            found += [f"{where}: {error}" for where, error in sorted(self._failing.items())]
        return found

    def _inc(self, name: str, label: str) -> None:
        with self._lock:
            self._counters[name][label] += 1

    def rendered(self, resource: str, reloaded: bool = False) -> None:
        """A render succeeded (and, when `reloaded`, replaced its destination)."""
        with self._lock:
            self._counters["confd_renders_total"][resource] += 1
            if reloaded:
                self._counters["confd_reloads_total"][resource] += 1
            self._last_success[resource] = time.time()
            self._pending.discard(resource)

    def render_failed(self, resource: str) -> None:
        """A render, check command, write or reload failed."""
        self._inc("confd_render_failures_total", resource)

    def backend_error(self, backend: str) -> None:
        """Reading or watching `backend` failed."""
        self._inc("confd_backend_errors_total", backend)

    def watch_reconnected(self, prefix: str) -> None:
        """A watch on `prefix` came back after an error."""
        self._inc("confd_watch_reconnects_total", prefix)

    def value(self, name: str, label: str) -> float:
        """The current value of counter `name` for `label` (0 when never counted)."""
        with self._lock:
            return self._counters[name].get(label, 0.0)

    def exposition(self) -> str:
        """Everything in the Prometheus text format."""
        lines: list[str] = []
        with self._lock:
            for name, (label, help_text) in _COUNTERS.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                for key, count in sorted(self._counters[name].items()):
                    lines.append(f'{name}{{{label}="{_escape(key)}"}} {count:g}')
            lines += [
                "# HELP confd_last_success_timestamp_seconds Unix time of the last good render.",
                "# TYPE confd_last_success_timestamp_seconds gauge",
            ]
            for key, stamp in sorted(self._last_success.items()):
                lines.append(
                    f'confd_last_success_timestamp_seconds{{resource="{_escape(key)}"}} {stamp:.3f}'
                )
            lines += [
                "# HELP confd_ready 1 once every resource has rendered at least once.",
                "# TYPE confd_ready gauge",
                f"confd_ready {int(self._ready())}",
            ]
        return "\n".join(lines) + "\n"
