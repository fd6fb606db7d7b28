"""The API key, removed from what a server sends before anything else sees it.

A server may echo the key (in an error message, in a payload).  The socket thread passes
every frame it receives through :meth:`KeyRedactor.redact_frames` before the session
decodes it, so stdout (NDJSON passes frames through byte for byte), the table, ``-v``
and the ``--record`` file all get the same redacted frame.  ``c2ws replay`` does the same
to the frames of a recording when it knows the key.

The usual burst holds no key and costs a few byte searches (memchr): a burst that lacks
one of the marker's bytes (the run of the key every encoder writes plainly) cannot hold
the key, whatever its frames say; one that has them all costs one substring search for
the whole burst.  A frame that may hold it is decoded: every string in it (object keys
included) has each occurrence of the key replaced by ``****``, whether the server wrote
the key's characters plainly or escaped (``\\"``, ``\\/``, ``\\u002B``), and the frame
is encoded again (valid JSON, the same values; its bytes are no longer the server's:
``1e5`` becomes ``100000.0``).  A frame that is not JSON has the key's plain bytes
replaced.  Not matched: the key as a JSON number, or spelt by JSON syntax rather than
inside a string (only a key containing a quote could be), and an echo that escapes
letters or digits (no encoder does).

Sans-I/O: plain functions of bytes and text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, overload

import orjson

from c2ws import spec
from c2ws.speedups import COMPILED, any_contains

REDACTED: Final = "****"
_REDACTED_BYTES: Final = REDACTED.encode()


def long_enough_to_redact(api_key: str) -> bool:
    """Whether replacing ``api_key`` in text is safe: a shorter "key" occurs by chance
    in unrelated text ("USD"), which redaction would mangle, showing where the key was."""
    return len(api_key) >= spec.MIN_API_KEY_LENGTH


# Lowercase letters by how common they are in English (and so in JSON field names and
# values), the most common first: a probe for a rarer byte is likelier to find none.
_COMMON_LOWERCASE: Final = "etaoinsrhldcumfpgwybvkxjqz"


def _probe_order(byte: int) -> tuple[int, int]:
    """Sort key of the marker's bytes, likeliest to be absent from a burst first:
    punctuation, then capitals, digits, and lowercase letters rarest first."""
    char = chr(byte)
    if char.islower():
        return 3, -_COMMON_LOWERCASE.find(char)
    if char.isdigit():
        return 2, 0
    if char.isupper():
        return 1, 0
    return 0, 0


def _marker(api_key: str) -> str:
    """The longest run of the key's characters that every JSON encoder writes plainly:
    an echo of the key holds it in every encoding, so a frame without it holds no key."""
    runs = "".join(" " if ch in spec.JSON_MAY_ESCAPE else ch for ch in api_key).split(" ")
    return max(runs, key=len)


class KeyRedactor:
    """Replaces the API key in frames and text by ``****``."""

    def __init__(self, api_key: str) -> None:
        if not long_enough_to_redact(api_key):
            raise ValueError(
                f"an API key shorter than {spec.MIN_API_KEY_LENGTH} characters cannot be "
                "redacted without mangling other text"
            )
        self.api_key = api_key
        self._key_bytes = api_key.encode()
        self._marker_text = _marker(api_key)
        self._marker = self._marker_text.encode()
        # Each byte of the marker once, the likeliest to be absent first (see _may_hold).
        self._probes = [bytes((byte,)) for byte in sorted(set(self._marker), key=_probe_order)]

    @property
    def marker(self) -> bytes:
        """Bytes every echo of the key holds, however a JSON encoder wrote it: a frame
        without them holds no key."""
        return self._marker

    def redact_frames(self, frames: list[bytes]) -> None:
        """Redact ``frames`` in place.  Runs for every burst a socket read brings: when no
        frame holds the key, it costs a few searches in C for the whole burst."""
        if not frames:
            return
        if COMPILED:  # memmem over each frame in C
            if not any_contains(frames, self._marker):
                return
        elif not self._may_hold(frames[0] if len(frames) == 1 else b"".join(frames)):
            return
        for index, data in enumerate(frames):
            if self._marker in data:
                frames[index] = self.redact_frame(data)

    def _may_hold(self, data: bytes) -> bool:
        """Whether ``data`` holds the marker (True may also be two frames joined: each is
        then searched).  A byte search (memchr) that finds nothing settles it for a
        fraction of a substring search's cost; the byte found absent is tried first
        next time, as the traffic is much the same from burst to burst."""
        probes = self._probes
        for index, probe in enumerate(probes):
            if data.find(probe) < 0:
                if index:
                    probes.insert(0, probes.pop(index))
                return False
        return self._marker in data

    @overload
    def redact_frame(self, data: bytes) -> bytes: ...
    @overload
    def redact_frame(self, data: str) -> str: ...
    @overload
    def redact_frame(self, data: bytes | str) -> bytes | str: ...

    def redact_frame(self, data: bytes | str) -> bytes | str:
        """``data`` (one frame, bytes or text) without the key; ``data`` itself when it
        holds none."""
        if isinstance(data, str):
            if self._marker_text not in data:
                return data
        elif self._marker not in data:
            return data
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:  # not JSON (nor UTF-8): the key's plain bytes
            return self._redact_plain(data)
        if isinstance(document, str):
            if self.api_key not in document:
                return data
            redacted: object = self.redact_text(document)
        elif not _redact_strings(document, self.api_key):
            return data
        else:
            redacted = document
        try:
            encoded = orjson.dumps(redacted)
        except orjson.JSONEncodeError:
            # Nested deeper than the encoder goes (a hostile frame; C2's nest 3 deep):
            # the key's plain bytes, at the risk of leaving the frame no longer JSON.
            return self._redact_plain(data)
        return encoded.decode() if isinstance(data, str) else encoded

    def _redact_plain(self, data: bytes | str) -> bytes | str:
        if isinstance(data, str):
            return self.redact_text(data)
        return data.replace(self._key_bytes, _REDACTED_BYTES)

    def redact_text(self, text: str) -> str:
        """``text`` (not JSON: a close reason, a connection's end) without the key."""
        return text.replace(self.api_key, REDACTED)


def _containers(document: object) -> Iterator[dict[str, object] | list[object]]:
    """Every object and array in ``document``, without recursion (a frame may nest as
    deep as the decoder allows)."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(value for value in node.values() if isinstance(value, (dict, list)))
        elif isinstance(node, list):
            yield node
            stack.extend(value for value in node if isinstance(value, (dict, list)))


def _redact_strings(document: object, api_key: str) -> bool:
    """Replace the key in every string of ``document`` (decoded JSON, changed in place);
    whether there was any."""
    found = False
    for node in _containers(document):
        if isinstance(node, dict):
            if any(api_key in name for name in node):
                renamed = [(name.replace(api_key, REDACTED), value) for name, value in node.items()]
                node.clear()
                node.update(renamed)
                found = True
            for name, value in node.items():
                if isinstance(value, str) and api_key in value:
                    node[name] = value.replace(api_key, REDACTED)
                    found = True
        else:
            for index, value in enumerate(node):
                if isinstance(value, str) and api_key in value:
                    node[index] = value.replace(api_key, REDACTED)
                    found = True
    return found
