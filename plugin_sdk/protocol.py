"""Constants of the go-plugin compatible handshake, shared by host and plugin.

Kept free of gRPC imports so the host can read them without loading gRPC.
"""

from __future__ import annotations

MAGIC_COOKIE_KEY = "CONFD_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "xtanpmnh5nqffr256vnevap59w86p3wmxkfkcp9hx4fzf5frjc3tf3tkcczcatyd"
CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
HEALTH_SERVICE = "plugin"

ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
ENV_MIN_PORT = "PLUGIN_MIN_PORT"
ENV_MAX_PORT = "PLUGIN_MAX_PORT"
ENV_UNIX_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
ENV_CLIENT_CERT = "PLUGIN_CLIENT_CERT"

NOT_A_PROGRAM = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)
