"""go-plugin's GRPCStdio on the plugin side: what the plugin prints after the handshake is
captured and streamed to the host instead of corrupting the handshake pipe."""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator

import grpc

from plugin_sdk.proto.confd_plugin import grpc_stdio_pb2, grpc_stdio_pb2_grpc

_Channel = grpc_stdio_pb2.StdioData.Channel
_MAX_PENDING = 4096  # chunks kept for a host that never reads; later ones are dropped


class StdioCapture:
    """Collects text written to the replaced sys.stdout/sys.stderr, tagged by channel."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[tuple[int, bytes] | None] = queue.Queue(_MAX_PENDING)
        self.closed = threading.Event()

    def close(self) -> None:
        """No more output: a stream ends once it has sent what is queued (None marks the end).

        Without this the host's open StreamStdio call held the plugin's shutdown for the
        whole server grace period.
        """
        self.closed.set()
        with contextlib.suppress(queue.Full):
            self.chunks.put_nowait(None)

    def stream(self, channel: int) -> io.TextIOBase:
        """A text stream whose writes become chunks of `channel` (STDOUT or STDERR)."""
        return _ChannelWriter(self, channel)

    def put(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(queue.Full):
            self.chunks.put_nowait((channel, data))


class _ChannelWriter(io.TextIOBase):
    def __init__(self, capture: StdioCapture, channel: int) -> None:
        self._capture = capture
        self._channel = channel

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self._capture.put(self._channel, text.encode("utf-8", "replace"))
        return len(text)


class StdioService(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """Streams captured output to the one host that asks (go-plugin calls it once)."""

    def __init__(self, capture: StdioCapture) -> None:
        self._capture = capture

    def StreamStdio(self, request: object, context: grpc.ServicerContext) -> Iterator[object]:
        while context.is_active():
            try:
                chunk = self._capture.chunks.get(timeout=0.5)
            except queue.Empty:
                if self._capture.closed.is_set():
                    return
                continue
            if chunk is None:
                return
            channel, data = chunk
            yield grpc_stdio_pb2.StdioData(channel=channel, data=data)


STDOUT = _Channel.STDOUT
STDERR = _Channel.STDERR
