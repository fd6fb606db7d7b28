"""Every protocol constant and every assumption c2ws makes where the C2 docs are silent.

The documented facts come from ``shared/reference/c2-ws-protocol.md``.  The values
under "Our choices" are inferences: if the real server turns out to differ, this
module is the one place to change.
"""

from __future__ import annotations

from typing import Final

# --- Documented facts -------------------------------------------------------------

DEFAULT_URL: Final = "wss://api4-general.collective2.com/ws"
PROTOCOL_VERSION: Final = 4

CHANNEL_SIGNAL: Final = "strategy.signal"
CHANNEL_POSITIONS: Final = "strategy.positions"
CHANNELS: Final = (CHANNEL_SIGNAL, CHANNEL_POSITIONS)

# Client -> server message types (the only two the server accepts).
MSG_SUBSCRIPTION_REQUEST: Final = "subscription.request"
MSG_HEARTBEAT_ACK: Final = "heartbeat.ack"

# Server -> client message types.
MSG_CONNECTED: Final = "connection.connected"
MSG_DISCONNECTED: Final = "connection.disconnected"  # reserved, not emitted today
MSG_HEARTBEAT: Final = "heartbeat"
MSG_SUBSCRIPTION_ACK: Final = "subscription.ack"
MSG_ERROR: Final = "error"
MSG_GAP: Final = "gap"
STREAM_MSG_TYPES: Final = frozenset({CHANNEL_SIGNAL, CHANNEL_POSITIONS})

ACTION_SUBSCRIBE: Final = "subscribe"
ACTION_UNSUBSCRIBE: Final = "unsubscribe"
ACTIONS: Final = (ACTION_SUBSCRIBE, ACTION_UNSUBSCRIBE)

ERROR_UNAUTHORIZED: Final = "UNAUTHORIZED"
ERROR_FORBIDDEN: Final = "FORBIDDEN"
ERROR_INVALID_PARAMETER: Final = "INVALID_PARAMETER"

MAX_REQUEST_ID_LENGTH: Final = 50
MAX_CLOCK_SKEW_SECONDS: Final = 60.0
HEARTBEAT_INTERVAL_SECONDS: Final = 30.0
HEARTBEAT_GRACE_SECONDS: Final = 10.0
REPLAY_LIMIT: Final = 1000
MAX_CONNECTIONS_PER_KEY: Final = 10
MAX_SUBSCRIPTIONS_PER_CONNECTION: Final = 100

HTTP_UNAUTHORIZED: Final = 401
HTTP_TOO_MANY_REQUESTS: Final = 429
HTTP_SERVICE_UNAVAILABLE: Final = 503
ERROR_HEADER: Final = "X-WS-Error"
CLOSE_NORMAL: Final = 1000
CLOSE_POLICY_VIOLATION: Final = 1008

# --- Our choices where the docs are silent ------------------------------------------

# resume_from is a string in the docs' table and examples; we send that type.
RESUME_FROM_AS_STRING: Final = True

# Timestamps we emit: second precision, 'Z' suffix, exactly as the docs' examples.
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"

# The client declares a connection dead when nothing at all arrives for this long:
# one heartbeat interval, the server's grace, and a margin for network jitter.
CLIENT_STALE_AFTER_SECONDS: Final = HEARTBEAT_INTERVAL_SECONDS + HEARTBEAT_GRACE_SECONDS + 5.0

# Signal seq_ids are assumed contiguous per strategy stream, so a jump (e.g. 7 -> 9)
# outside a replay is reported as a possible loss.  Set to False if the real server
# turns out to number sparsely.
SEQ_IDS_CONTIGUOUS: Final = True

# Frames larger than this are refused before decoding (hostile-input bound).
MAX_FRAME_BYTES: Final = 1 << 20


# The docs name no code for the subscription limit or an unknown client msg_type.
ERROR_LIMIT_EXCEEDED: Final = "LIMIT_EXCEEDED"
ERROR_UNKNOWN_MESSAGE_TYPE: Final = "INVALID_PARAMETER"

# Close code the server uses when heartbeat.ack stops arriving (docs say only "closes").
CLOSE_HEARTBEAT_TIMEOUT: Final = 4000

# gap.payload.from: the seq_id of the last replayed signal, so the client holds
# everything up to and including it and the REST fetch starts right after it.
# (The docs' single example cannot tell this apart from "the resume point".)

# Where a stream payload names its strategy (the envelope itself does not).
STRATEGY_ID_KEYS: Final = ("StrategyId", "strategy_id", "strategyId")

# --- Connection opening and frame reading (c2ws/net/connection.py) -------------------
# Hostile-input bounds and deadlines of one connection; none of them is documented by C2.

# The HTTP answer to the upgrade (and a proxy's answer to CONNECT): the status line and
# headers together, and how many header lines, before the answer is refused as malformed.
MAX_UPGRADE_HEADER_BYTES: Final = 16 * 1024
MAX_UPGRADE_HEADER_LINES: Final = 100
# Of an HTTP rejection (401, 429...) we read at most this much body, whatever it announces.
MAX_REJECTION_BODY_BYTES: Final = 4 * 1024
# The rejection reason we keep (X-WS-Error, else the status text), in characters.
MAX_REJECTION_REASON_CHARS: Final = 200

# Once a frame's first byte has arrived, all its bytes must follow within this long.
FRAME_COMPLETION_TIMEOUT_SECONDS: Final = 10.0
# A fragmented message may span at most this many frames (continuations included).
MAX_FRAGMENTS_PER_MESSAGE: Final = 1024
# One frame we send must be taken by the socket within this long, or the server is
# deemed to have stopped reading.
SEND_TIMEOUT_SECONDS: Final = 10.0
