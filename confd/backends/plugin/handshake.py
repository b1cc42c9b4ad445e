"""Parsing the plugin's handshake line: `core|app|network|address|protocol[|cert]`."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from confd.errors import PluginError
from plugin_sdk.protocol import CORE_PROTOCOL_VERSION

_FORM = "CORE|APP|NETWORK|ADDRESS|PROTOCOL[|CERT]"


@dataclass(frozen=True)
class Handshake:
    """What the plugin announced. `server_cert` is DER, or None when it serves plaintext."""

    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str
    server_cert: bytes | None

    @property
    def target(self) -> str:
        """The gRPC target to dial."""
        return f"unix:{self.address}" if self.network == "unix" else self.address


def parse_handshake(plugin: str, line: str, versions: Collection[int]) -> Handshake:
    """Check and split one handshake line; PluginError naming the plugin and the line if bad.

    Accepts 5 fields, or 6 where the 6th is empty (go-plugin 1.0.x) or a base64 DER
    certificate without padding.
    """
    text = line.strip()
    shown = repr(text[:200])
    parts = text.split("|")
    if len(parts) not in (5, 6):
        raise PluginError(
            f"plugin {plugin!r} printed {shown} instead of a handshake line ({_FORM})"
        )
    core, app, network, address, protocol = parts[:5]
    try:
        core_version, app_version = int(core), int(app)
    except ValueError:
        raise PluginError(
            f"plugin {plugin!r} printed {shown} instead of a handshake line ({_FORM})"
        ) from None
    if core_version != CORE_PROTOCOL_VERSION:
        raise PluginError(
            f"plugin {plugin!r} speaks core protocol version {core_version}, confd speaks "
            f"{CORE_PROTOCOL_VERSION} (handshake {shown}); rebuild the plugin against a "
            "compatible go-plugin or plugin_sdk"
        )
    if app_version not in versions:
        raise PluginError(
            f"plugin {plugin!r} chose protocol version {app_version}, confd offered "
            f"{','.join(map(str, sorted(versions)))} (handshake {shown})"
        )
    if network not in ("unix", "tcp") or not address:
        raise PluginError(f"plugin {plugin!r} announced unusable address in handshake {shown}")
    if protocol != "grpc":
        raise PluginError(
            f"plugin {plugin!r} speaks {protocol!r}; confd supports only 'grpc' plugins "
            f"(handshake {shown})"
        )
    cert: bytes | None = None
    if len(parts) == 6 and parts[5]:
        from plugin_sdk.mtls import decode_der

        try:
            cert = decode_der(parts[5])
        except ValueError:
            raise PluginError(
                f"plugin {plugin!r} sent a certificate that is not base64 DER in its handshake"
            ) from None
    return Handshake(core_version, app_version, network, address, protocol, cert)
