"""`LaunchOptions`: how the host starts one plugin, the one record `open_plugin`,
`PluginDatabase` and `PluginProcess` share (go-plugin's `ClientConfig`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from plugin_sdk.protocol import APP_PROTOCOL_VERSIONS


@dataclass(frozen=True)
class LaunchOptions:
    """Everything needed to start, hand-shake with and connect to plugin `name`."""

    # The backend name: it appears in every log line and error about the plugin.
    name: str
    # The plugin's argv: the `confd-database-NAME` executable (or an isolated built-in).
    command: Sequence[str]
    # AutoMTLS (go-plugin's): fresh certificates both ways and a TLS session, or a clear
    # failure. Never a silent plaintext fallback; False only for tests and benchmarks.
    auto_mtls: bool = True
    # Seconds from spawn to a health-checked connection before the start counts as failed.
    start_timeout: float = 10.0
    # The app protocol versions offered in PLUGIN_PROTOCOL_VERSIONS; the plugin picks one.
    versions: Sequence[int] = APP_PROTOCOL_VERSIONS
    # Extra environment variables for the plugin process, on top of confd's own.
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "versions", tuple(self.versions))
        object.__setattr__(self, "env", dict(self.env))
