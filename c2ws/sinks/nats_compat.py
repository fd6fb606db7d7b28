"""Everything the NATS sink takes from nats-py beyond its public API, in one place.

The sink publishes through nats-py's public ``Client`` (``connect``, ``subscribe``,
``publish``, ``jetstream``).  Three things it does faster, or more safely, by reaching
into the client; they are here and nowhere else, pyproject.toml pins the versions tested
(``nats-py>=2.9,<3``) and tests/test_nats_compat.py checks every name below against the
installed version, naming this module when one is gone:

* **Acks taken first** (:class:`AckFirstClient`, a subclass: nothing of nats-py is
  patched): its ``_process_msg`` (what nats-py's parser calls for every MSG) hands the
  messages of the sink's own inbox straight to the sink, before nats-py makes a message
  object of each and passes it through the subscription's queue to a task of its own
  (half the cost of an ack).  Every other message goes nats-py's way.
* **Acks read in bulk** (its parser, ``_ps``, a subclass of nats-py's ``Parser``): the
  run of the inbox's plain acks a socket read brings is cut out in one step
  (:func:`c2ws.speedups.nats_acks`, in C when built) and handed over as one list; what
  follows the run (anything else: a PING, an HMSG, another subject's message) goes
  through nats-py's parser as it would have, and an ack not whole yet waits for the
  next read.  tests/test_nats_compat.py checks that the acks taken, everything else
  passed on and nats-py's counts are those of nats-py's parser, however the bytes are
  split.
* **The HPUB command made beforehand** (:meth:`AckFirstClient.send_encoded`): the sink's
  consumer thread makes each publish's protocol bytes once
  (:func:`c2ws.sinks.nats.encode_publish`, the same bytes as nats-py's ``publish``:
  tests/test_nats_encode.py); this hands a run of them to nats-py's writer at once, as
  its ``_send_publish`` would one by one, instead of ``publish`` validating and
  encoding the headers again on the loop for every publish.
* **What a lost connection leaves unsent is dropped** (:meth:`AckFirstClient.drop_unsent`):
  nats-py keeps the commands it had not written yet when the connection is lost
  (``_pending``) and writes them first once it reconnects.  A publish before them may
  have been lost with the connection; the sink publishes everything again from the
  first unacknowledged message, and must not have later messages stored before it
  (JetStream would hold the subject out of order, its last message, where a restart
  resumes, not the newest).  nats-py's public options do not give that: with
  ``pending_size=0`` a publish *while disconnected* raises, but what was queued while
  still connected (the writer waiting for the socket, the loss seen after) stays queued
  and is sent first after the reconnect all the same.

When the installed nats-py lacks any of it (:func:`supported` is False) the sink uses
the plain ``Client`` and its public API, and keeps a single publish unacknowledged at a
time: nothing later is ever queued behind a publish that may be lost, so the order
holds without dropping anything; slower (one round trip a message), still correct.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final

from c2ws import speedups

# The private names used, as (what, name): "Client" an attribute of the class (a method,
# with its parameters checked), "instance" one a new Client has; "Parser" and "parser"
# the same of nats.protocol.parser.Parser, "parser module" a name of that module.
PRIVATE_NAMES: Final = (
    ("Client", "_process_msg"),
    ("Client", "_process_headers"),
    ("Client", "_send_command"),
    ("Client", "_flush_pending"),
    ("instance", "_pending"),
    ("instance", "_pending_data_size"),
    ("instance", "_flush_queue"),
    ("instance", "_status"),
    ("instance", "_max_payload"),
    ("instance", "_ps"),
    ("Parser", "parse"),
    ("parser", "nc"),
    ("parser", "buf"),
    ("parser", "state"),
    ("parser module", "AWAITING_CONTROL_LINE"),
)
# The parameters of the methods overridden or called, as this module calls them.
SIGNATURES: Final = {
    "_process_msg": ("self", "sid", "subject", "reply", "data", "headers"),
    "_process_headers": ("self", "headers"),
    "_send_command": ("self", "cmd", "priority"),
    "_flush_pending": ("self", "force_flush"),
    "parse": ("self", "data"),
}
# The instance attributes' types, as this module reads and writes them.
_INSTANCE_TYPES: Final[dict[str, type[Any]]] = {
    "_pending": list, "_pending_data_size": int, "_status": int, "_max_payload": int,
    "buf": bytearray, "state": int, "AWAITING_CONTROL_LINE": int}

# (the inbox prefix as bytes, token of a reply's subject suffix or None, take an ack,
# take a run of plain acks: (int(token), data) each)
AckHandler = tuple[bytes, Callable[[bytes], int | None],
                   Callable[[int, "dict[str, str] | None", bytes], None],
                   Callable[[list[tuple[int, bytes]]], None]]


def missing() -> list[str]:
    """What the installed nats-py lacks of what this module uses (empty: everything is
    there), each as ``nats.aio.client.Client.<name>`` with what is wrong with it."""
    try:
        from nats.aio.client import Client
        from nats.protocol import parser as parser_module
    except ImportError as exc:
        return [f"nats.aio.client.Client ({exc})"]
    gone: list[str] = []
    if not isinstance(getattr(Client, "CONNECTED", None), int):
        gone.append("nats.aio.client.Client.CONNECTED (not an int)")
    try:
        instance = Client()
    except Exception as exc:  # a Client made differently: none of it can be trusted
        return [f"nats.aio.client.Client() ({type(exc).__name__}: {exc})"]
    parser = getattr(instance, "_ps", None)
    places: dict[str, tuple[object, str]] = {
        "Client": (Client, "nats.aio.client.Client"),
        "instance": (instance, "nats.aio.client.Client"),
        "Parser": (getattr(parser_module, "Parser", None), "nats.protocol.parser.Parser"),
        "parser": (parser, "nats.protocol.parser.Parser"),
        "parser module": (parser_module, "nats.protocol.parser")}
    if not isinstance(parser, getattr(parser_module, "Parser", ())):
        gone.append("nats.aio.client.Client._ps (not a nats.protocol.parser.Parser)")
    for what, name in PRIVATE_NAMES:
        where, owner = places[what]
        qualified = f"{owner}.{name}"
        if not hasattr(where, name):
            gone.append(f"{qualified} (it is gone)")
            continue
        found = getattr(where, name)
        if name in SIGNATURES:
            try:
                wanted = SIGNATURES[name]
                got = tuple(inspect.signature(found).parameters)
            except (TypeError, ValueError):
                got = ()
            if got != wanted or not inspect.iscoroutinefunction(found):
                gone.append(f"{qualified} (now {got}, not async {wanted})")
        elif name in _INSTANCE_TYPES and not isinstance(found, _INSTANCE_TYPES[name]):
            gone.append(f"{qualified} (a {type(found).__name__}, not "
                        f"{_INSTANCE_TYPES[name].__name__})")
    return gone


@functools.cache
def supported() -> bool:
    """The installed nats-py has everything :class:`AckFirstClient` uses."""
    return not missing()


@functools.cache
def client_class() -> type[Any]:
    """nats-py's ``Client``, subclassed as :class:`AckFirstClient` describes (nats-py is
    imported only when a NATS sink is made)."""
    from nats.aio.client import Client
    from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

    scan = speedups.nats_acks

    class AckFirstParser(Parser):
        """nats-py's parser, that first cuts the run of the sink's plain acks out of
        what a read brought (see the module docstring)."""

        async def parse(self, data: bytes = b"") -> None:
            taken = self.nc._c2ws_acks
            if taken is None or self.state != AWAITING_CONTROL_LINE:
                await super().parse(data)
                return
            buf = self.buf
            chunk: bytes | bytearray = data
            if buf:  # what the last read left: an ack not whole yet
                buf.extend(data)
                chunk = buf
            acks, position, more = scan(chunk, 0, taken[0])
            if acks:
                stats = self.nc.stats
                stats["in_msgs"] += len(acks)
                stats["in_bytes"] += sum(len(ack[1]) for ack in acks)
            if chunk is buf:
                del buf[:position]
            elif position < len(data):
                buf.extend(memoryview(data)[position:])
            if acks:
                taken[3](acks)
            if buf and not more:  # something else: nats-py's way, from there on
                await super().parse()

    class AckFirstClient(Client):
        """A ``Client`` that hands the replies to one inbox straight to a handler."""

        _c2ws_acks: AckHandler | None = None

        def __init__(self) -> None:
            super().__init__()
            self._ps = AckFirstParser(self)

        def take_acks_first(self, inbox: str, token_of: Callable[[bytes], int | None],
                            take: Callable[[int, dict[str, str] | None, bytes], None],
                            take_run: Callable[[list[tuple[int, bytes]]], None],
                            ) -> None:
            """Replies whose subject begins with ``inbox`` (the sink subscribed to
            ``inbox + "*"``) go to ``take(token, headers, data)`` as nats-py parses
            them, those whose ``token_of(rest of the subject)`` is not None; the
            others are dropped.  A run of plain ones (no headers, an all-digit rest:
            see :func:`c2ws.speedups.nats_acks`) goes to ``take_run`` at once as
            ``(int(rest), data)`` each, whatever ``token_of`` would say of it.
            Counted in ``stats`` as nats-py counts them."""
            self._c2ws_acks = (inbox.encode(), token_of, take, take_run)

        async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                               headers: bytes) -> None:
            taken = self._c2ws_acks
            if taken is None or not subject.startswith(taken[0]):
                await super()._process_msg(sid, subject, reply, data, headers)
                return
            stats = self.stats
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            token = taken[1](subject[len(taken[0]):])
            if token is not None:
                parsed = await self._process_headers(headers) if headers else None
                taken[2](token, parsed, data)

        def largest_payload(self) -> int:
            """The largest payload the server takes (what :meth:`send_encoded` may
            carry: a larger one is ``publish``'s to refuse)."""
            most: int = self._max_payload
            return most

        async def send_encoded(self, command: bytes, count: int, payload_bytes: int,
                               ) -> bool:
            """Send ``count`` publishes' whole HPUB commands, one after the other in
            ``command`` (their payloads ``payload_bytes`` in all, none larger than
            :meth:`largest_payload`), as nats-py's ``_send_publish`` would one by one;
            False, sending nothing, when the client is not connected (the caller then
            uses ``publish``, which buffers or refuses as it must)."""
            if self._status != Client.CONNECTED:
                return False
            stats = self.stats
            stats["out_msgs"] += count
            stats["out_bytes"] += payload_bytes
            await self._send_command(command)
            if self._flush_queue is not None and self._flush_queue.empty():
                await self._flush_pending()
            return True

        def drop_unsent(self, reply_prefix: str) -> int:
            """Forget the publishes queued and not written whose reply subject begins
            with ``reply_prefix`` (the sink's inbox: a run :meth:`send_encoded` sent
            is the sink's only); how many commands (a run is one) were dropped."""
            pending: list[bytes] = self._pending
            if not pending:
                return 0
            ours = f" {reply_prefix}".encode()
            kept = [command for command in pending
                    if not (command[:5] == b"HPUB "
                            and ours in command[:command.find(b"\r\n")])]
            dropped = len(pending) - len(kept)
            if dropped:
                self._pending = kept
                self._pending_data_size = sum(map(len, kept))
            return dropped

    return AckFirstClient
