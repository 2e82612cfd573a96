"""A lean HTTP/1.1 keep-alive client for the load generator's hot path (issue 18 item 2).

httpx costs the generator 4.5–6 ms of CPU per answer (docs/scaling.md): at scenario C's
500 req/s that is two to three cores, the whole machine, so the generator — not the
API — set the pace. This client does the least a measurement needs, on an asyncio
:class:`~asyncio.Protocol` (uvloop's loop where the caller runs one):

- the caller sends pre-rendered request bytes; one request at a time per connection (no
  pipelining), connections kept alive between requests, so TLS handshakes are rare;
- the answer parser reads the status line, the headers (names lower-cased), and a body
  framed by ``Content-Length``, chunked transfer coding, or the connection's close;
- every request has a deadline on the loop's clock: past it the request fails and its
  connection is closed, whatever arrives on it ignored (a late answer must not be read
  as the next request's);
- :class:`ConnectionSlots` is a fixed set of connection slots, each bound to a source
  address (nginx limits per address), taken first free, first served.

Anything that is not a well-formed answer — a connection closed before the answer was
complete, a malformed status line, header or chunk — raises :class:`AnswerError`: the
generator counts it as an error, never as an answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

#: An answer's head (status line and headers) larger than this is refused as malformed.
MAX_HEAD_BYTES = 64 * 1024
#: Chunk-size lines longer than this are malformed (hex digits and extensions).
MAX_CHUNK_LINE_BYTES = 1024
#: Answers with no body by definition (RFC 9112 §6.3).
_BODYLESS = frozenset({204, 304})
#: The framing of the body being read.
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2


class AnswerError(Exception):
    """No usable answer came: the request failed (the generator counts an error)."""


class ConnectionClosedError(AnswerError):
    """The connection closed (or could not be opened) before the answer was complete."""


class MalformedAnswerError(AnswerError):
    """The server sent something that is not an HTTP/1.x answer."""


class AnswerTimeoutError(AnswerError):
    """The request's deadline passed before its answer was complete."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: its status, headers (lower-cased names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def render_request(
    method: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    """The bytes of an HTTP/1.1 request (keep-alive: no ``Connection: close``).

    :param target: the path and query, already encoded.
    :param host: the ``Host`` header (``host:port``).
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "User-Agent: pixecom-simulate"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """(status, headers, keep_alive) of an answer's head, without its final blank line.

    :raises MalformedAnswerError: not an HTTP/1.x status line, or a header line without
        a colon.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise MalformedAnswerError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not b"100" <= code <= b"599":
        raise MalformedAnswerError(f"not a status code: {code[:16]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise MalformedAnswerError(f"not a header line: {line[:80]!r}")
        key = name.lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (
        parts[0] == b"HTTP/1.1" or "keep-alive" in connection
    )
    return int(code), headers, keep_alive


class Http1Connection(asyncio.Protocol):
    """One keep-alive connection: :meth:`send` a request, await its :class:`Answer`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = True
        self._framing = -1  # -1: reading the head
        self._length = 0
        self._chunk_left: int | None = None  # None: a chunk-size line is next; -1: trailers
        self._body = bytearray()
        #: The connection is gone (closed by either side, aborted, or failed).
        self.closed = False
        #: Another request may follow on this connection.
        self.reusable = True
        #: Answers read on this connection.
        self.answers = 0
        #: Bytes of the current answer received so far.
        self.received = 0

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        # uvloop's TLS transport is not a subclass of asyncio.Transport, but has its API.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; an answer nobody asked for ends the connection."""
        if self.closed:
            return  # a failed request's connection, closing: nothing on it is read
        if self._waiter is None:
            self._fail(MalformedAnswerError("the server sent bytes no request asked for"))
            return
        self.received += len(data)
        self._buffer += data
        try:
            self._parse()
        except MalformedAnswerError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        """The server closed its side: an answer framed by the close is complete."""
        return False  # close the transport; connection_lost finishes the answer

    def connection_lost(self, exc: Exception | None) -> None:
        """Complete an answer framed by the close, else fail the pending request."""
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if self._framing == _UNTIL_CLOSE:
            self._body += self._buffer
            self._buffer.clear()
            self._finish()
            return
        self._fail(ConnectionClosedError(f"the connection closed before the answer: {exc}"))

    # -- requests ----------------------------------------------------------------------

    def send(self, request: bytes, deadline: float) -> asyncio.Future[Answer]:
        """Write ``request``; the future resolves to its answer, or fails with an
        :class:`AnswerError` (``deadline`` is on the loop's clock)."""
        waiter = self._loop.create_future()
        if self.closed or self._transport is None or self._waiter is not None:
            waiter.set_exception(ConnectionClosedError("the connection is not open and idle"))
            return waiter
        self._waiter = waiter
        self._framing = -1
        self.received = 0
        self._timer = self._loop.call_at(deadline, self._time_out)
        self._transport.write(request)
        return waiter

    @property
    def idle(self) -> bool:
        """Open, with no request waiting for its answer."""
        return not self.closed and self._waiter is None

    def close(self) -> None:
        """Close the connection (a pending request fails)."""
        self.reusable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None and not self.closed:
            self._transport.close()

    def _time_out(self) -> None:
        self._timer = None
        self._fail(AnswerTimeoutError("the deadline passed before the answer was complete"))

    def _fail(self, error: AnswerError) -> None:
        """Fail the pending request and close the connection: whatever comes later on
        it would be read as the answer to the next request, so nothing more is read.

        Closed, not aborted: uvloop's TLS transport, aborted while it still had bytes to
        process, logged "Fatal error on SSL protocol" for each such connection.
        """
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.answers += 1
        answer = Answer(self._status, self._headers, bytes(self._body))
        self._body.clear()
        self._framing = -1
        if not self._keep_alive or self._buffer:
            # Bytes after a complete answer, with no request pipelined: not HTTP/1.1.
            self.reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    # -- the parser --------------------------------------------------------------------

    def _parse(self) -> None:
        buffer = self._buffer
        while self._framing == -1:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise MalformedAnswerError("the answer's head is too large")
                return
            status, headers, keep_alive = parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if status < 200:
                continue  # an interim answer (100 Continue, 103 Early Hints): skip it
            self._status, self._headers, self._keep_alive = status, headers, keep_alive
            if status in _BODYLESS:
                self._framing = _LENGTH
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._framing = _CHUNKED
                self._chunk_left = None
            elif "content-length" in headers:
                length = headers["content-length"]
                if not length.isdigit():
                    raise MalformedAnswerError(f"not a Content-Length: {length[:40]!r}")
                self._framing = _LENGTH
                self._length = int(length)
            else:
                self._framing = _UNTIL_CLOSE
                self._keep_alive = False
                return
        if self._framing == _LENGTH:
            if len(buffer) >= self._length:
                self._body += buffer[: self._length]
                del buffer[: self._length]
                self._finish()
        elif self._framing == _CHUNKED:
            self._parse_chunks()

    def _parse_chunks(self) -> None:
        buffer = self._buffer
        while True:
            if self._chunk_left is None:
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    if len(buffer) > MAX_CHUNK_LINE_BYTES:
                        raise MalformedAnswerError("a chunk-size line is too long")
                    return
                size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise MalformedAnswerError(f"not a chunk size: {size_text[:40]!r}") from None
                if size < 0 or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                    raise MalformedAnswerError(f"not a chunk size: {size_text[:40]!r}")
                del buffer[: line_end + 2]
                self._chunk_left = size if size else -1
            elif self._chunk_left == -1:
                # Trailers (usually none) end with an empty line.
                if buffer.startswith(b"\r\n"):
                    del buffer[:2]
                else:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > MAX_HEAD_BYTES:
                            raise MalformedAnswerError("the answer's trailers are too large")
                        return
                    del buffer[: end + 4]
                self._chunk_left = None
                self._finish()
                return
            else:
                left = self._chunk_left
                if len(buffer) < left + 2:
                    return
                if buffer[left : left + 2] != b"\r\n":
                    raise MalformedAnswerError("a chunk is longer than its size")
                self._body += buffer[:left]
                del buffer[: left + 2]
                self._chunk_left = None


class _Slot:
    """A connection slot bound to one source address; holds a connection once opened."""

    __slots__ = ("connection", "source")

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.connection: Http1Connection | None = None


class ConnectionSlots:
    """A fixed number of keep-alive connection slots to one server.

    Slot ``i`` connects from ``source_addresses[i % len(source_addresses)]`` (None: the
    system's choice); a request takes the slot freed longest ago, so the addresses share
    the load evenly (nginx's limits are per address), and waits for one when all are
    busy — the wait is part of its latency, since its deadline runs from its arrival.

    :param tls: a context to speak HTTPS with (ALPN offers only ``http/1.1``), or None.
    :param server_hostname: the name to check the server's certificate against.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        slots: int,
        source_addresses: Sequence[str | None] = (None,),
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        if slots < 1 or not source_addresses:
            raise ValueError("at least one slot and one source address")
        self.host = host
        self.port = port
        self.tls = tls
        self.server_hostname = (server_hostname or host) if tls is not None else None
        self._free = deque(_Slot(source_addresses[i % len(source_addresses)]) for i in range(slots))
        self._all = list(self._free)
        self._waiters: deque[asyncio.Future[_Slot]] = deque()
        #: Connections opened so far (a TLS handshake each, behind TLS).
        self.connections_opened = 0

    async def request(self, request: bytes, deadline: float, *, idempotent: bool = True) -> Answer:
        """Send ``request`` on a free slot's connection (opened if need be) and return
        its answer by ``deadline`` (the loop's clock).

        An idempotent request whose reused connection closed before any byte of the
        answer (the server's keep-alive timer raced it) is sent once more on a new
        connection, as browsers do.

        :raises AnswerError: no complete, well-formed answer by the deadline.
        """
        loop = asyncio.get_running_loop()
        slot = await self._take(loop)
        try:
            if loop.time() >= deadline:
                raise AnswerTimeoutError("the deadline passed while waiting for a connection")
            for attempt in (1, 2):
                connection = slot.connection
                if connection is None or connection.closed:
                    connection = await self._connect(slot, loop, deadline)
                reused = connection.answers > 0
                try:
                    answer = await connection.send(request, deadline)
                except ConnectionClosedError:
                    slot.connection = None
                    if attempt == 1 and idempotent and reused and connection.received == 0:
                        continue
                    raise
                except AnswerError:
                    slot.connection = None
                    raise
                if not connection.reusable:
                    connection.close()
                    slot.connection = None
                return answer
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            # Cancelled, or failed: the connection may hold half an answer.
            if slot.connection is not None and not slot.connection.idle:
                slot.connection.close()
                slot.connection = None
            raise
        finally:
            self._give_back(slot)

    async def _connect(
        self, slot: _Slot, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> Http1Connection:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AnswerTimeoutError("the deadline passed before a connection was opened")
        try:
            _transport, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Http1Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.server_hostname,
                    local_addr=(slot.source, 0) if slot.source is not None else None,
                ),
                remaining,
            )
        except TimeoutError:
            raise AnswerTimeoutError("the deadline passed while connecting") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionClosedError(f"could not connect: {exc}") from exc
        self.connections_opened += 1
        slot.connection = connection
        return connection

    async def _take(self, loop: asyncio.AbstractEventLoop) -> _Slot:
        if self._free:
            return self._free.popleft()
        waiter: asyncio.Future[_Slot] = loop.create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())
            raise

    def _give_back(self, slot: _Slot) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._free.append(slot)

    def close(self) -> None:
        """Close every open connection."""
        for slot in self._all:
            if slot.connection is not None:
                slot.connection.close()
                slot.connection = None
