"""Streams, stream capture and CUDA graphs on the stand-in.

Work runs when it is issued (the host is the device), except on a stream that is capturing:
there the raw calls the stand-in can defer (cuBLAS GEMMs, ``RawKernel`` launches, graph
launches) are *recorded* as :class:`Operation` nodes, and :meth:`Graph.launch` replays them in
order. Everything else (ufuncs, ``ElementwiseKernel``, copies, synchronisation) would run at once
instead of being recorded, so on a capturing stream it raises, as CUDA refuses unrecorded or
synchronising work during capture, and it invalidates that capture (``end_capture`` then
raises too). Like CUDA:

- the legacy null stream (``Stream.null``, ptr 0) cannot capture; using it while a *blocking*
  stream (``non_blocking=False``) captures is ``cudaErrorStreamCaptureImplicit``;
- ``synchronize()`` on a capturing stream, or of the device while any stream captures, is
  ``cudaErrorStreamCaptureUnsupported``;
- the current stream is per thread: ``with stream:`` makes it current until the block ends,
  ``stream.use()`` makes it current from then on.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Graph", "Operation", "Stream", "StreamState"]

_STREAM_HANDLES = itertools.count(0x5D000)


class Operation:
    """A recordable device operation: ``run()`` does it (checks included), ``name`` says what."""

    __slots__ = ("name", "run")

    def __init__(self, name: str, run: Callable[[], None]) -> None:
        self.name, self.run = name, run

    def __repr__(self) -> str:
        return f"<Operation {self.name}>"


class StreamState:
    """The streams of one stand-in module: each thread's current stream, the captures under way."""

    def __init__(self, error: type) -> None:
        self.error = error
        self.local = threading.local()
        self.capturing: set[Stream] = set()
        self.null: Stream | None = None  # set by the module's Stream class

    def current(self) -> Stream:
        stream = getattr(self.local, "stream", None)
        return stream if stream is not None else self.null

    def _implicit(self, stream: Stream, what: str) -> None:
        """The legacy stream waits for every blocking stream: not while one of them captures."""
        if stream.ptr != 0:
            return
        blocking = [s for s in tuple(self.capturing) if not s.non_blocking]
        if blocking:
            for captured in blocking:
                captured._invalidated = True
            raise self.error(
                f"cudaErrorStreamCaptureImplicit: {what} on the legacy null stream while blocking "
                f"stream {blocking[0].ptr:#x} captures (it would have to wait for unfinished work)"
            )

    def refuse_unrecorded(self, what: str) -> None:
        """Raise if ``what`` (work the stand-in runs at once) would go to a capturing stream."""
        if not self.capturing:
            return
        stream = self.current()
        if stream._capture is not None:
            stream._invalidated = True
            raise self.error(
                f"cudaErrorStreamCaptureUnsupported: {what} on capturing stream {stream.ptr:#x}: "
                "the stand-in would run it now instead of recording it (only raw cuBLAS calls, "
                "RawKernel launches and graph launches are recorded); the capture is invalidated"
            )
        self._implicit(stream, what)

    def submit(self, operation: Operation, stream: Stream | None = None) -> bool:
        """Run ``operation`` on ``stream`` (default: current), or record it if that stream
        captures. Returns whether it was recorded."""
        stream = self.current() if stream is None else stream
        if self.capturing:
            self._implicit(stream, operation.name)
            if stream._capture is not None:
                stream._capture.append(operation)
                return True
        operation.run()
        return False

    def synchronize_device(self) -> None:
        if self.capturing:
            for stream in tuple(self.capturing):
                stream._invalidated = True
            raise self.error(
                "cudaErrorStreamCaptureUnsupported: device synchronisation while a stream captures"
            )


class Stream:
    """``cupy.cuda.Stream(null=False, non_blocking=False, ptds=False)``; each stand-in module
    subclasses it with its own ``_state`` (and its own ``Stream.null``)."""

    _state: StreamState

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.ptr = 0 if null else next(_STREAM_HANDLES)
        self.non_blocking = bool(non_blocking) and not null
        self.device_id = -1
        self._capture: list[Operation] | None = None
        self._invalidated = False

    # -- current stream
    def __enter__(self) -> Stream:
        local = self._state.local
        local.__dict__.setdefault("previous", []).append(getattr(local, "stream", None))
        local.stream = self
        return self

    def __exit__(self, *exception: object) -> None:
        local = self._state.local
        local.stream = local.previous.pop()

    def use(self) -> Stream:
        self._state.local.stream = self
        return self

    # -- synchronisation
    def synchronize(self) -> None:
        if self._capture is not None:
            self._invalidated = True
            raise self._state.error(
                f"cudaErrorStreamCaptureUnsupported: synchronize() on capturing stream "
                f"{self.ptr:#x}"
            )
        if self._state.capturing:
            self._state._implicit(self, "synchronize()")

    @property
    def done(self) -> bool:
        return self._capture is None

    # -- capture
    def begin_capture(self, mode: Any = None) -> None:
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if self._capture is not None:
            raise self._state.error(
                f"cudaErrorIllegalState: stream {self.ptr:#x} is already capturing"
            )
        self._capture, self._invalidated = [], False
        self._state.capturing.add(self)

    def end_capture(self) -> Graph:
        if self._capture is None:
            raise self._state.error(f"cudaErrorIllegalState: stream {self.ptr:#x} is not capturing")
        nodes, invalidated = self._capture, self._invalidated
        self._capture, self._invalidated = None, False
        self._state.capturing.discard(self)
        if invalidated:
            raise self._state.error(
                "cudaErrorStreamCaptureInvalidated: the capture was invalidated by work CUDA "
                "refuses during capture"
            )
        return Graph(nodes, self._state)

    def is_capturing(self) -> bool:
        if self._state.capturing:
            self._state._implicit(self, "is_capturing()")
        return self._capture is not None

    def __repr__(self) -> str:
        return f"<Stream {self.ptr:#x}>"


class Graph:
    """``cupy.cuda.graph.Graph``: the operations one capture recorded, in order.

    ``nodes`` are the :class:`Operation` objects; ``launches`` counts :meth:`launch` calls that
    ran (a launch recorded into another capture runs when that graph does).
    """

    def __init__(self, nodes: list[Operation], state: StreamState) -> None:
        self.nodes = tuple(nodes)
        self.launches = 0
        self._state = state

    def _replay(self) -> None:
        for node in self.nodes:
            node.run()
        self.launches += 1

    def launch(self, stream: Stream | None = None) -> None:
        self._state.submit(Operation(f"graph of {len(self.nodes)} nodes", self._replay), stream)

    def upload(self, stream: Stream | None = None) -> None:
        return None
