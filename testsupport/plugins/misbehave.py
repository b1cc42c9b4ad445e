"""A plugin that misbehaves as the MISBEHAVE environment variable says.

five: plaintext, 5 fields | empty6: plaintext, 6 fields with an empty 6th (go-plugin 1.0.x)
core2: core version 2 | garbage: prints prose | silent: prints nothing, sleeps
flood: floods stderr, never hand-shakes | exit: exits 3 after a stderr line
errors: hand-shakes, then every Database call fails | nostdio: no GRPCStdio service
p521: AutoMTLS with a P-521 certificate, as go-plugin makes them (grpcio cannot verify it)
p521-wrongcert: as p521, but announces another certificate than the one it serves
"""

import os
import sys
import time

from plugin_sdk import Database, DatabaseError, Setting, serve

mode = os.environ.get("MISBEHAVE", "")


class Failing(Database):
    name = "misbehave"
    settings = (Setting("fail_configure", bool, False, "refuse Configure (mode errors)"),)

    def configure(self, config):
        if mode == "errors" and config.get("fail_configure"):
            raise DatabaseError("backend 'misbehave': setting 'fail_configure' refused")

    def get_values(self, keys):
        if mode == "errors":
            raise DatabaseError("backend 'misbehave': store is on fire")
        if mode == "errors-internal":
            raise KeyError("boom")
        return {"/k": "v"}


class _FirstLine:
    """Rewrites the handshake line the SDK prints (the only way to fake old plugins)."""

    def __init__(self, stream, change):
        self._stream, self._change, self._done = stream, change, False

    def write(self, text):
        if not self._done:
            self._done = True
            text = self._change(text)
        return self._stream.write(text)

    def flush(self):
        self._stream.flush()


if mode in ("five", "empty6", "nostdio"):
    os.environ.pop("PLUGIN_CLIENT_CERT", None)
if mode == "empty6":
    sys.stdout = _FirstLine(sys.stdout, lambda t: t.rstrip("\n") + "|\n")
elif mode == "core2":
    sys.stdout = _FirstLine(sys.stdout, lambda t: "2" + t[1:])
elif mode == "garbage":
    print("hello, I am definitely a plugin", flush=True)
    time.sleep(30)
elif mode == "silent":
    sys.stderr.write("[WARN] thinking very hard\n")
    sys.stderr.flush()
    time.sleep(30)
elif mode == "flood":
    line = "x" * 200 + "\n"
    while True:
        sys.stderr.write(line)
elif mode == "exit":
    sys.stderr.write("[ERROR] cannot open my config\n")
    sys.exit(3)
if mode.startswith("p521"):
    from plugin_sdk import mtls

    _make = mtls.make_certificate
    mtls.make_certificate = lambda curve="secp521r1": _make("secp521r1")
if mode == "p521-wrongcert":
    _encode = mtls.encode_der
    mtls.encode_der = lambda der: _encode(_make("secp521r1").cert_der)
if mode == "nostdio":
    from plugin_sdk.proto.confd_plugin import grpc_stdio_pb2_grpc

    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server = lambda *a: None

serve(Failing())
