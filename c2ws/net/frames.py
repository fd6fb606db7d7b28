"""WebSocket framing for a client (RFC 6455), sans-I/O: bytes in, frames out; frames out
as bytes.  No sockets, no clocks of its own: the driver feeds what it read and when.

:class:`FrameReader` never waits for anything.  It hands out every frame that is whole
in its buffer and keeps the rest, so a half-received frame can never hold up the
complete ones before it; a frame is only parsed once all of its bytes are in (its
header says how many), so nothing here blocks on a frame that is not complete.  The
usual frame of a stream (one unfragmented, unmasked text frame of up to 64 KiB) takes a
short path, :meth:`FrameReader.text_burst`, a burst at a time; everything else (control
frames, fragments, longer or masked frames, anything malformed) goes through
:meth:`FrameReader.next_frame`, frame by frame, with every check.

What it accepts is what websocket-client's reader accepted before it (the differential
tests in tests/test_frame_fast_path.py hold them together), with our bounds on top:
a frame or fragmented message over spec.MAX_FRAME_BYTES is refused as soon as its header
announces it (:class:`FrameTooLarge`), and a message split into more than
spec.MAX_FRAGMENTS_PER_MESSAGE frames too (:class:`TooManyFragments`).
"""

from __future__ import annotations

import os
from typing import Final

from c2ws import spec
from c2ws.speedups import ndjson_burst, text_burst

OPCODE_CONT: Final = 0x0
OPCODE_TEXT: Final = 0x1
OPCODE_BINARY: Final = 0x2
OPCODE_CLOSE: Final = 0x8
OPCODE_PING: Final = 0x9
OPCODE_PONG: Final = 0xA
_OPCODES: Final = frozenset({OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE,
                             OPCODE_PING, OPCODE_PONG})
_DATA_OPCODES: Final = frozenset({OPCODE_TEXT, OPCODE_BINARY})
# FIN, no RSV bits, opcode 1 (text): the first header byte of an unfragmented text frame.
_FIN_TEXT: Final = 0x81
# A control frame's payload is at most 125 bytes (RFC 6455 5.5).
MAX_CONTROL_PAYLOAD: Final = 125
# Close codes a peer may send (RFC 6455 7.4.1; 1004-1006 and 1015 never go on the wire),
# and the ranges registered for libraries and applications (7.4.2).
_VALID_CLOSE_CODES: Final = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                       1012, 1013, 1014})
_APPLICATION_CLOSE_CODES: Final = range(3000, 5000)
MASK_KEY_BATCH: Final = 256

# One message handed out: (opcode, payload).  TEXT and BINARY are whole messages (their
# fragments joined); CLOSE, PING and PONG are single control frames.
Message = tuple[int, bytes]


class FrameError(Exception):
    """The server's bytes are not acceptable WebSocket frames; the connection is closed
    with :attr:`close_code`."""

    close_code: int = 1002


class ProtocolViolation(FrameError):
    """A framing error (RFC 6455): reserved bits, an unknown opcode, a bad control frame,
    a continuation without a start..."""


class FrameTooLarge(FrameError):
    """A frame or fragmented message over spec.MAX_FRAME_BYTES: refused before it is read."""

    close_code = 1009


class TooManyFragments(FrameTooLarge):
    """A message split into more than spec.MAX_FRAGMENTS_PER_MESSAGE frames."""


class FrameReader:
    """Frames out of the bytes of one connection, as they arrive.

    ``incomplete_since``: when the first byte of a frame that is not yet whole arrived
    (the ``now`` of the :meth:`feed` that brought it, or of :meth:`note_bytes_under_way`),
    None when the buffer holds no part of a frame.  The driver bounds how long a frame
    may stay incomplete from there (spec.FRAME_COMPLETION_TIMEOUT_SECONDS)."""

    def __init__(
        self, *, max_frame_bytes: int = spec.MAX_FRAME_BYTES,
        max_fragments: int = spec.MAX_FRAGMENTS_PER_MESSAGE,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_fragments = max_fragments
        self.incomplete_since: float | None = None
        # Unparsed bytes: _chunk from _offset on, then the _later chunks (kept apart while
        # the frame they continue is short of _needed bytes, so that a large frame arriving
        # in many reads is joined once, not once per read).
        self._chunk = b""
        self._offset = 0
        self._later: list[bytes] = []
        self._later_bytes = 0
        self._needed = 0
        self._fed_at = 0.0
        # The fragmented message under way (None: none).
        self._fragments: list[bytes] | None = None
        self._message_opcode = OPCODE_TEXT
        self._message_bytes = 0
        self._message_fragments = 0

    # --- input ---------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> None:
        """Bytes read from the connection at ``now``."""
        if not data:
            return
        self._fed_at = now
        if self.incomplete_since is None:
            self.incomplete_since = now
        if self._offset >= len(self._chunk) and not self._later:
            self._chunk, self._offset = data, 0  # the usual case: nothing left over
            return
        self._later.append(data)
        self._later_bytes += len(data)
        if len(self._chunk) - self._offset + self._later_bytes >= self._needed:
            self._chunk = b"".join([self._chunk[self._offset :], *self._later])
            self._offset = 0
            self._later.clear()
            self._later_bytes = 0

    def note_bytes_under_way(self, now: float) -> None:
        """Bytes of a frame arrived that are not readable yet (half a TLS record): for the
        completion deadline, a frame has begun."""
        if self.incomplete_since is None:
            self.incomplete_since = now

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as frames."""
        return len(self._chunk) - self._offset + self._later_bytes

    def wanted(self) -> int:
        """How many more bytes complete the frame whose first part is at the head of the
        buffer (0: the buffer holds none).  A read of no more than that ends where the
        frame does, so the next read begins at a frame's first byte and its frames are
        cut where they are, instead of the whole read being joined to this frame's part
        first (a copy of every read in a long burst: reads rarely end between frames)."""
        available = len(self._chunk) - self._offset + self._later_bytes  # (buffered)
        if not available:
            return 0
        head = self._chunk[self._offset : self._offset + 10]
        if len(head) < 10 and self._later:
            head = (head + b"".join(self._later))[:10]
        if len(head) < 2:
            return 2 - len(head)
        length = head[1] & 0x7F
        header = 2 if length < 126 else 4 if length == 126 else 10
        if len(head) < header:
            return header - len(head)
        if header > 2:
            length = int.from_bytes(head[2:header], "big")
        total = header + (4 if head[1] & 0x80 else 0) + length
        return max(0, total - available)

    # --- output --------------------------------------------------------------------------

    def text_burst(self) -> list[bytes]:
        """The plain text frames at the head of the buffer, in order: FIN set, no RSV
        bits, opcode text, unmasked, a 7- or 16-bit length (at most 64 KiB), all of it
        buffered.  Stops at the first frame that is anything else (left to
        :meth:`next_frame`, with every check)."""
        if self._fragments is not None or self._later:
            return []
        frames, position = text_burst(self._chunk, self._offset)  # see c2ws.speedups
        if frames:
            self._offset = position
            self._consumed()
        return frames

    def lone_text(self, data: bytes) -> bytes | None:
        """The payload of ``data`` when it is exactly one plain text frame (FIN, no RSV
        bits, opcode text, unmasked, a 7-bit length) and the buffer holds nothing, no
        fragmented message being under way: what :meth:`feed` then :meth:`next_frame`
        would hand out, and the only thing (a differential test holds them together),
        with nothing buffered.  None otherwise: nothing was done, :meth:`feed` it.  An
        idle connection's read (a heartbeat) in a few operations."""
        if (
            len(data) >= 2 and data[0] == _FIN_TEXT and data[1] < 126
            and len(data) == data[1] + 2 and self._fragments is None
            and self._offset >= len(self._chunk) and not self._later
            and data[1] <= self.max_frame_bytes and self.max_fragments > 0
        ):
            return data[2:]
        return None

    def plain_burst(self, marker: bytes | None) -> tuple[bytes, int]:
        """The plain text frames at the head of the buffer as NDJSON, and how many (see
        :func:`c2ws.speedups.ndjson_burst`: the usual frames of a stream, up to the first
        that is not one, or holds ``marker``); (b"", 0) when the next frame is not one."""
        if self._fragments is not None or self._later:
            return b"", 0
        lines, count, position = ndjson_burst(self._chunk, self._offset, marker)
        if count:
            self._offset = position
            self._consumed()
        return lines, count

    def next_frame(self) -> Message | None:
        """The next message or control frame whole in the buffer (fragments joined), None
        when what is buffered does not complete one.  Raises :class:`FrameError`."""
        while True:
            frame = self._take_frame()
            if frame is None:
                return None
            message = self._assemble(*frame)
            if message is not None:
                return message

    # --- parsing ---------------------------------------------------------------------------

    def _take_frame(self) -> tuple[int, int, bytes] | None:
        """(fin, opcode, payload) of the frame at the head of the buffer, checked, or None
        if it is not all there yet."""
        if self._later:
            return None  # still short of _needed
        chunk, position = self._chunk, self._offset
        available = len(chunk) - position
        if available < 2:
            self._needed = 2
            return None
        first, second = chunk[position], chunk[position + 1]
        length = second & 0x7F
        header = 2
        if length == 126:
            header = 4
        elif length == 127:
            header = 10
        if available < header:
            self._needed = header
            return None
        if header > 2:
            length = int.from_bytes(chunk[position + 2 : position + header], "big")
        if length > self.max_frame_bytes:
            raise FrameTooLarge(
                f"frame of {length} bytes exceeds the limit of {self.max_frame_bytes}"
            )
        masked = second & 0x80
        start = position + header + (4 if masked else 0)
        total = start - position + length
        if available < total:
            self._needed = total
            return None
        payload = chunk[start : start + length]
        if masked:
            payload = apply_mask(payload, chunk[start - 4 : start])
        self._offset = position + total
        self._needed = 0
        self._consumed()
        fin, opcode = first >> 7, first & 0x0F
        _check_frame(first, fin, opcode, payload)
        return fin, opcode, payload

    def _assemble(self, fin: int, opcode: int, payload: bytes) -> Message | None:
        """Count a data frame against the message bounds, join fragments, and hand out
        what is complete (in websocket-client's order of checks)."""
        if opcode in _DATA_OPCODES:
            self._message_bytes, self._message_fragments = len(payload), 1
        elif opcode == OPCODE_CONT:
            self._message_bytes += len(payload)
            self._message_fragments += 1
        elif opcode == OPCODE_PING and len(payload) > MAX_CONTROL_PAYLOAD:
            raise ProtocolViolation("a ping frame over 125 bytes")
        else:
            return opcode, payload  # control frames sit between fragments uncounted
        if self._message_bytes > self.max_frame_bytes:
            raise FrameTooLarge(
                f"fragmented message over the limit of {self.max_frame_bytes} bytes"
            )
        if self._message_fragments > self.max_fragments:
            raise TooManyFragments(
                f"message split into more than {self.max_fragments} fragments"
            )
        fragments = self._fragments
        if fragments is None:
            if opcode == OPCODE_CONT:
                raise ProtocolViolation("a continuation frame without a message to continue")
            if fin:
                return opcode, payload
            self._fragments, self._message_opcode = [payload], opcode
            return None
        if opcode != OPCODE_CONT:
            raise ProtocolViolation("a new message inside a fragmented one")
        fragments.append(payload)
        if not fin:
            return None
        self._fragments = None
        return self._message_opcode, b"".join(fragments)

    def _consumed(self) -> None:
        """A frame was taken: what is left (if anything) is a frame whose first byte came
        with the latest read (every frame before it is complete)."""
        if self._offset >= len(self._chunk) and not self._later:
            self._chunk, self._offset = b"", 0
            self.incomplete_since = None
        else:
            self.incomplete_since = self._fed_at


def _check_frame(first: int, fin: int, opcode: int, payload: bytes) -> None:
    if first & 0x70:
        raise ProtocolViolation("reserved bits set (no extension was negotiated)")
    if opcode not in _OPCODES:
        raise ProtocolViolation(f"unknown opcode {opcode}")
    if opcode == OPCODE_PING and not fin:
        raise ProtocolViolation("a fragmented ping frame")
    if opcode == OPCODE_CLOSE and payload:
        if len(payload) == 1 or len(payload) > MAX_CONTROL_PAYLOAD:
            raise ProtocolViolation(f"a close frame of {len(payload)} bytes")
        code = int.from_bytes(payload[:2], "big")
        if code not in _VALID_CLOSE_CODES and code not in _APPLICATION_CLOSE_CODES:
            raise ProtocolViolation(f"a close frame with the invalid code {code}")


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of a close frame's payload; code None when it carries none."""
    if len(payload) < 2:
        return None, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")


# --- what we send ----------------------------------------------------------------------


def apply_mask(data: bytes, mask_key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte key repeated, as one big integer operation."""
    length = len(data)
    key = (mask_key * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )


def client_frame(opcode: int, payload: bytes, mask_key: bytes) -> bytes:
    """One unfragmented, masked frame as a client sends it (RFC 6455 5.2, 5.3)."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((first, 0xFE)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 0xFF)) + length.to_bytes(8, "big")
    return header + mask_key + apply_mask(payload, mask_key)


def client_text_frame(data: bytes, mask_key: bytes) -> bytes:
    """One unfragmented, masked text frame, byte for byte what websocket-client's
    ``ABNF.create_frame(data, OPCODE_TEXT).format()`` makes with the same mask key
    (tests/test_connection.py compares them), in a few operations."""
    length = len(data)
    if length < 126:
        header = bytes((_FIN_TEXT, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((_FIN_TEXT, 0xFE)) + length.to_bytes(2, "big")
    else:
        header = bytes((_FIN_TEXT, 0xFF)) + length.to_bytes(8, "big")
    key = (mask_key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )
    return header + mask_key + masked


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then the reason cut to fit 125 bytes."""
    return code.to_bytes(2, "big") + reason.encode()[: MAX_CONTROL_PAYLOAD - 2]


class MaskKeys:
    """Four bytes from the OS's random source per frame sent, fetched MASK_KEY_BATCH at a
    time: a heartbeat ack then costs one system call fewer.  Bytes held in memory are
    just as unpredictable to the network as fresh ones, which is what RFC 6455 asks of a
    mask."""

    def __init__(self) -> None:
        self._keys = b""
        self._offset = 0

    def next(self) -> bytes:
        offset = self._offset
        if offset >= len(self._keys):
            self._keys, offset = os.urandom(4 * MASK_KEY_BATCH), 0
        self._offset = offset + 4
        return self._keys[offset : offset + 4]
