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
# The names a channel may be given by (command line, config file, c2ws.stream()).
CHANNEL_ALIASES: Final = {
    "signal": CHANNEL_SIGNAL,
    "signals": CHANNEL_SIGNAL,
    CHANNEL_SIGNAL: CHANNEL_SIGNAL,
    "positions": CHANNEL_POSITIONS,
    "position": CHANNEL_POSITIONS,
    CHANNEL_POSITIONS: CHANNEL_POSITIONS,
}

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

# Deadlines after the upgrade (the docs give none).  Each ends the connection, which is
# then retried like a drop.  connection.connected is "sent immediately after the upgrade".
# How long opening a connection (TCP, TLS, the HTTP upgrade) may take (--connect-timeout).
CONNECT_TIMEOUT_SECONDS: Final = 10.0
CONNECTED_TIMEOUT_SECONDS: Final = 10.0
# A subscription.request unanswered (no ack, no error) for this long.
SUBSCRIPTION_ACK_TIMEOUT_SECONDS: Final = 10.0

# The documented limits combined: 10 connections x 100 subscriptions per key.
MAX_SUBSCRIPTIONS_PER_KEY: Final = MAX_CONNECTIONS_PER_KEY * MAX_SUBSCRIPTIONS_PER_CONNECTION

# --strategies-file (issue 25): how often its stat is polled for a change (a thread that
# sleeps in between: one stat a second costs nothing measurable), and the most of it read.
STRATEGIES_FILE_POLL_SECONDS: Final = 1.0
STRATEGIES_FILE_MAX_BYTES: Final = 1 << 20

# A seq_id more than this far ahead of the cursor is implausible (a corrupt value, or the
# server renumbered): the message is delivered, but the cursor only moves to it when the
# next message continues from it, so one bad value cannot make later messages look old.
SUSPECT_SEQ_JUMP: Final = 100_000

# A server that restarted its numbering (or a cursor restored from a state file far
# ahead of the server) sends seq_ids at or below the cursor for ever.  Such a message is
# never delivered at once: it is held aside, at most HELD_ASIDE_LIMIT per stream (one
# replay's worth; memory is bounded by that, never by the server), until the verdict.
# - After a (re)subscription with resume_from the server replays right after the
#   subscription.ack: the *replay phase* lasts until the first message above the cursor
#   or REPLAY_WINDOW_SECONDS after the ack (1000 frames even on a slow link), and what
#   is held aside in it is a quiet duplicate candidate.  Outside it, such a message is
#   reported at once, and the verdict comes REPLAY_WINDOW_SECONDS after it arrived.
# - A message above the cursor shows the stream still follows the old numbering: what is
#   held aside was replay overlap or stray duplicates, and is dropped.
# - Otherwise, once the replay phase or the window is over, or when one more message
#   than HELD_ASIDE_LIMIT is held aside (more than any replay), c2ws declares a sequence
#   reset: it writes a SEQUENCE_RESET line, delivers what was held aside (in order, true
#   duplicates among them dropped) and follows the new numbering.
REPLAY_WINDOW_SECONDS: Final = 10.0
HELD_ASIDE_LIMIT: Final = REPLAY_LIMIT
# The msg_type of the line c2ws writes for a sequence reset (the server never sends it).
SEQUENCE_RESET: Final = "sequence.reset"

# Reconnect backoff: exponential with full jitter (uniform between 0 and the step),
# capped by --max-backoff.  Busy answers (429, 503, the 1008 race) start higher and never
# wait less than half the step: the server asked us to go away for a while.
BACKOFF_INITIAL_SECONDS: Final = 0.5
BACKOFF_BUSY_INITIAL_SECONDS: Final = 5.0
BACKOFF_FACTOR: Final = 2.0
BACKOFF_MAX_SECONDS: Final = 30.0

# A connection must stay up this long with every subscription answered before its slot's
# count of consecutive failures starts again from zero.  A server that accepts, acks and
# closes at once must not keep the backoff at its first step and defeat --max-retries.
# 30 s: the documented heartbeat interval, so such a connection has had (about) one
# heartbeat round trip and was really serving; it is also the default --max-backoff, so a
# server that drops us every 30 s or more is never reconnected to faster than the capped
# backoff would anyway; and it is short enough that a proxy or load balancer cutting idle
# connections every minute or so is not mistaken for a failing server.
STABLE_CONNECTION_SECONDS: Final = HEARTBEAT_INTERVAL_SECONDS

# A Retry-After header on a 429/503 upgrade answer (delta-seconds or an HTTP-date) sets the
# next wait: at least that long, at most --max-backoff; repeated refusals still back off
# (our own schedule applies when it is longer).  Values are bounded to a day when parsed,
# so a hostile header cannot make a number no wait or message can hold.
MAX_RETRY_AFTER_SECONDS: Final = 86_400.0

# Messages held for a slow stdout reader (--max-buffer) before the connection is closed,
# to be resumed from the cursor once the reader has caught up.
DEFAULT_MAX_BUFFER: Final = 10_000
# The resume level: a connection closed because its consumer fell --max-buffer behind
# reconnects once the backlog has drained to max_buffer // BACKLOG_RESUME_DIVISOR, and a
# library caller holding more than that unacknowledged (auto_ack=False) while such a
# connection waits gets BacklogFull instead of a wait that could only end by its own
# acknowledgements.  Half: the reconnect then has room for the burst its resume replays
# without being closed again at once, and the consumer is not starved meanwhile.
BACKLOG_RESUME_DIVISOR: Final = 2
# Events of any kind (control events, gaps, -v/--record traffic...) held for the output
# thread, per message of --max-buffer: the backlog counts messages, but memory must stay
# bounded when a server floods control events while stdout is slow.  --record and -v add
# one event per frame, so twice the messages is ordinary; four leaves room.
BACKLOG_EVENTS_PER_MESSAGE: Final = 4
# The socket thread's side of the hand-off (c2ws/net/worker.py).  During a long burst the
# output thread is woken at least every HANDOFF_WAKE_EVERY events (not for every socket
# read: a wake-up crosses cores and the GIL), and at least every --max-buffer //
# HANDOFF_WAKE_DIVISOR messages, so that it is writing long before a small --max-buffer
# is reached (2000 events were more than a --max-buffer of 1000: the connection was
# closed for a backlog the output thread had not been told about).
HANDOFF_WAKE_EVERY: Final = 2000
HANDOFF_WAKE_DIVISOR: Final = 4
# A backlog past half of --max-buffer while the output thread is making progress (it
# finished something, or had caught up, within HANDOFF_PROGRESS_WINDOW_SECONDS): the
# socket thread waits up to HANDOFF_FAIRNESS_WAIT_SECONDS for it to fall back to half
# before reading on, instead of running into --max-buffer (a close and resume) during a
# burst.  Bounded, so heartbeats are still answered in time; an output thread stuck that
# long on what it has is a stopped reader and gets no such wait.
HANDOFF_FAIRNESS_WAIT_SECONDS: Final = 0.1
HANDOFF_PROGRESS_WINDOW_SECONDS: Final = 0.5
# How far the socket thread reads ahead of an output thread that is writing: the wait
# above starts past this many messages (or half of --max-buffer, when that is less), not
# at half of --max-buffer.  A reader that drains steadily is then never more than about
# this far behind (~1 MB of C2 frames), so memory stays flat over a long fast stream
# instead of growing until the backlog reaches half of --max-buffer (~4 MB by default);
# 1000 messages are still large hand-overs (a wait costs a few microseconds per ~1.5 ms
# of writing).  A reader that stops gets no wait and the backlog may still grow to
# --max-buffer, as before.
HANDOFF_READ_AHEAD_MESSAGES: Final = 1000
# The CLI gives the C heap's free pages back to the system once per this many messages
# written (c2ws/cli/heap.py): each trim takes 0.1-0.6 ms, ~5 ns a message; without it the
# resident size of a fast stream crept up by 4-5 MiB before it levelled off.
HEAP_TRIM_EVERY_MESSAGES: Final = 100_000

# Warnings a server can trigger at will (c2ws/render/diagnostics.py): each kind prints
# its first WARNING_BURST lines, then at most one line per WARNING_INTERVAL_SECONDS that
# says how many were held back.  Gaps get a larger burst: after a long outage every
# strategy may have one, and each is worth a line of its own.
WARNING_BURST: Final = 3
WARNING_INTERVAL_SECONDS: Final = 10.0
GAP_WARNING_BURST: Final = 10

# --- Watching a run from outside (issue 25: c2ws/monitor/) ------------------------------

# /healthz fails, and systemd's watchdog is no longer fed, when a connection has had no
# heartbeat for longer than this (since the run started, before the first): the
# documented interval plus the server's grace.  A --silence-timeout shorter than this
# (a run against a server with faster heartbeats) takes its place.
HEALTH_HEARTBEAT_DEADLINE_SECONDS: Final = HEARTBEAT_INTERVAL_SECONDS + HEARTBEAT_GRACE_SECONDS
# The metrics server answers one request at a time on its own thread (blocked in accept,
# no polling); a client gets this long to send its request and take the answer.
METRICS_REQUEST_TIMEOUT_SECONDS: Final = 5.0
# The NDJSON status line on stderr fits a terminal this wide (items are left out, then
# the line is cut, rather than wrap).
STATUS_LINE_COLUMNS: Final = 80

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

# --- State file and output reconciliation (c2ws/delivery/state.py) -------------------

# A state file holds one small JSON object; anything larger is refused as corrupt
# rather than read into memory.
STATE_MAX_BYTES: Final = 1 << 20
# Cursors one state file may hold: ten runs' worth of the engine's 1000 keys.
STATE_MAX_CURSORS: Final = 10_000
# How far back from its end the output file is searched for the last line of each key,
# when the state file records no committed offset (version 1, written by a c2ws before
# issue 23, or none): it must hold every line such a run wrote after its last commit
# (at most COMMIT_GROUP_MAX_MESSAGES lines: 12 MB of ~1.2 KB order objects); reading and
# parsing it whole (a stream with no line in it) takes ~0.1 s, once, at the start.  A
# version 2 state file records the offset, and the output is read forward from it, the
# whole uncommitted tail whatever its length (READ_BACK_MAX_UNCOMMITTED below).
OUTPUT_TAIL_SCAN_BYTES: Final = 16 << 20
# The longest unterminated tail c2ws will cut as "a torn line of its own": one output
# line re-encodes one frame, and re-encoding can grow a frame (1e5 -> 100000.0).
OUTPUT_MAX_TORN_BYTES: Final = 4 * MAX_FRAME_BYTES
# Group commit (issue 22; c2ws/delivery/groups.py): with --state and an output (a pipe,
# a terminal, a file appended to) the state file is made durable per group of written
# messages, on a thread of its own, not per message on the writing thread (a commit is a
# rewrite and two fsyncs, plus an fsync of an output file: 0.5-2.5 ms on an idle disk
# here, 10-20 ms while other processes write; per message it capped a pipe at ~1,500
# msg/s).  A group is committed once it holds half of COMMIT_GROUP_MAX_MESSAGES or its
# first message was acknowledged COMMIT_GROUP_MAX_SECONDS ago, at once when it holds a
# sequence reset, and when the stream closes.  The stream never hands out more than
# COMMIT_GROUP_MAX_MESSAGES messages that are not yet durable (it waits for a commit to
# end rather), and a batch at most half of it, so one group is written while the one
# before it commits.  So a disk allows half the bound per commit time: 5000 messages per
# 20 ms is 250k msg/s (with 2000, measured: --state ran at 0.55x plain NDJSON, the
# writer waiting for the disk; with 10000, 0.9-1.0x).  The bound is also what a pipe's
# reader may see again after a kill -9, though a busy stream's repeats are what it wrote
# in the last COMMIT_GROUP_MAX_SECONDS or so, and a slow stream's (a signal now and then)
# none or the last few.  0.1 s: at most 10 commits a second while signals trickle in.
COMMIT_GROUP_MAX_MESSAGES: Final = 10_000
COMMIT_GROUP_MAX_SECONDS: Final = 0.1
# Issue 22: NDJSON appended to a regular file (``>> out.ndjson``) repeats nothing after a
# crash, however far output is ahead of the last commit: the next start reads every line
# after the committed offset back.  There the bound only caps that read-back (at most
# this many lines, 80-120 MB: 100,000 lines of ~800 bytes read back in 0.44 s here,
# once, at the first start after a crash), so it is ten times
# the pipe's: in a burst a group is then committed by age (every
# COMMIT_GROUP_MAX_SECONDS) rather than every 5,000 messages.  Each commit fsyncs the
# output file and rewrites the state file (~6 ms of disk and 3 fsyncs); at ~440k msg/s
# the 5,000-message groups made ~88 commits a second (38 in a 200,000-message blast,
# 0.87x plain NDJSON >> file), the writer waiting for room whenever a commit took more
# than ~11 ms (a busy disk); by age, 4-5 commits, and the writer waits only for a commit
# of over ~0.1 s.
READ_BACK_MAX_UNCOMMITTED: Final = 100_000
# Issue 23: an output file whose lines cannot be read back to cursors (CSV, TSV,
# --fields, tables) has the bytes after its committed offset cut at the next start, and
# the server sends those messages again: it replays at most REPLAY_LIMIT signals per
# strategy, so no more than that many messages, of all streams together, are ever written
# and not committed (a group commits at half of it).  Positions are not replayed: those
# in a cut tail are gone, as are those sent while no run is connected.
CUT_OUTPUT_MAX_UNCOMMITTED: Final = REPLAY_LIMIT

# --- Sinks (issue 23; c2ws/sinks/) ------------------------------------------------------

# --exec CMD: a failed handler (exit status not 0, killed, timed out, not started) is run
# again --exec-retries times (default EXEC_DEFAULT_RETRIES), waiting EXEC_BACKOFF_FIRST
# seconds before the first retry, twice as long before each next one, at most
# EXEC_BACKOFF_MAX.  --exec-timeout (default none) bounds one run; at the timeout its
# process group is killed (SIGKILL: a hung handler gets no say).  Each line the handler
# prints goes to stderr, prefixed, cut at EXEC_OUTPUT_LINE_BYTES.
EXEC_DEFAULT_RETRIES: Final = 3
EXEC_BACKOFF_FIRST_SECONDS: Final = 0.5
EXEC_BACKOFF_MAX_SECONDS: Final = 30.0
EXEC_OUTPUT_LINE_BYTES: Final = 4096
# Variables of c2ws's own environment a handler does not get: the API key is not its.
EXEC_WITHHELD_VARIABLES: Final = ("C2_API_KEY", "C2WS_API_KEY_FILE")
# --to nats://: subjects PREFIX.<signal|positions>.<strategy_id>; --create-stream makes a
# stream of PREFIX.> with file storage, limits retention (kept until the operator trims
# it: no age or size limit of c2ws's) and NATS_DUPLICATE_WINDOW_SECONDS of Nats-Msg-Id
# deduplication (the server's default, 2 minutes: covers a publish retried after a lost
# ack and two instances racing on the same message; a restart resumes from the stream,
# so the window need not cover downtime).  At most NATS_MAX_IN_FLIGHT messages are
# written to the sink and not yet acknowledged (all of them in flight: publishing is
# pipelined across batches; a write past it waits for acks); each ack within
# NATS_ACK_TIMEOUT_SECONDS (then it is published again, same Nats-Msg-Id, everything
# unacknowledged after it too, whatever batch it is in: a round; a lost connection ends
# the round at once; up to NATS_PUBLISH_ATTEMPTS rounds in a row without an ack, a
# refused round waiting NATS_RETRY_PAUSE_SECONDS doubled each time, at most
# NATS_RETRY_PAUSE_MAX_SECONDS).  A lost connection is tried again every
# NATS_RECONNECT_WAIT_SECONDS, without end (the publishes time out meanwhile and end the
# run after their attempts).
NATS_SUBJECT_PREFIX: Final = "c2"
NATS_DUPLICATE_WINDOW_SECONDS: Final = 120.0
NATS_MAX_IN_FLIGHT: Final = 4096
NATS_ACK_TIMEOUT_SECONDS: Final = 5.0
NATS_PUBLISH_ATTEMPTS: Final = 12
NATS_CONNECT_TIMEOUT_SECONDS: Final = 5.0
NATS_RETRY_PAUSE_SECONDS: Final = 0.05
NATS_RETRY_PAUSE_MAX_SECONDS: Final = 2.0
NATS_RECONNECT_WAIT_SECONDS: Final = 0.2
# A sink whose batches turn durable after its write returned (--to nats://: publishing is
# pipelined across batches) is looked at again this often while some are not, so a quiet
# stream still gets its last batches acknowledged and committed (c2ws.sinks.settle_wait).
SINK_SETTLE_POLL_SECONDS: Final = 0.01
# --creds, --nkey and the TLS files are checked to be regular files of at most this many
# bytes before nats-py or ssl read them (a FIFO there would hang them).
NATS_CREDENTIAL_MAX_BYTES: Final = 1 << 20

# --- Hostile-input bounds: parsing server data and the reference server ----------------
# (added for issue 12; every number here is a limit c2ws enforces on what it is sent)

# Integers on the wire (seq_id, strategy ids, resume_from, gap "from") are read as signed
# 64-bit: a JSON integer in this range, or a string of an optional '-' and 1 to 19 ASCII
# digits whose value is in this range.  Anything else is "not an integer".
MIN_WIRE_INT: Final = -(2**63)
MAX_WIRE_INT: Final = 2**63 - 1

# An ``error`` message lists at most this many details; more are dropped when parsing.
MAX_ERROR_DETAILS: Final = 32

# Reference server: what a connection record remembers of the client's frames.  A frame
# up to RECORD_PREVIEW_BYTES is kept parsed (or, if malformed, whole); a longer one only
# as a preview of its first RECORD_PREVIEW_BYTES.  The newest valid and the newest
# malformed frames are each kept within RECORD_BUDGET_BYTES of memory; at most
# RECORD_CLOSED_KEPT records of closed connections are kept (by default; `c2ws serve`
# keeps none).  Open connections are bounded by the connection caps.
RECORD_PREVIEW_BYTES: Final = 512
RECORD_BUDGET_BYTES: Final = 64 * 1024
RECORD_CLOSED_KEPT: Final = 100

# c2ws.testing (the reference server as a test fixture).  A test server stops by itself
# after TEST_SERVER_LIFETIME_SECONDS, so a test that never leaves its ``with`` block (a
# hung bot, a leaked generator) cannot keep it serving for the rest of a long session;
# ten minutes is far beyond any single test of ours (pytest-timeout gives each 60 s) and
# a test may ask for more.  Its waits (``wait_for_subscribers``, ``wait_for``) give up
# after TEST_SERVER_WAIT_SECONDS unless told otherwise: generous for a bot on a loaded
# machine (a subprocess start, an import of c2ws), short enough to fail a test that
# waits for something that never happens well within its own timeout.
TEST_SERVER_LIFETIME_SECONDS: Final = 600.0
TEST_SERVER_WAIT_SECONDS: Final = 20.0

# --- Connection opening and frame reading (c2ws/net/connection.py, frames.py) --------
# Hostile-input bounds and deadlines of one connection; none of them is documented by C2.

# The HTTP answer to the upgrade (and a proxy's answer to CONNECT): the status line and
# headers together, and how many header lines, before the answer is refused as malformed.
MAX_UPGRADE_HEADER_BYTES: Final = 16 * 1024
MAX_UPGRADE_HEADER_LINES: Final = 100
# Of an HTTP rejection (401, 429...) we read at most this much body, whatever it announces.
MAX_REJECTION_BODY_BYTES: Final = 4 * 1024
# The rejection reason we keep (X-WS-Error, else the status text), in characters.
MAX_REJECTION_REASON_CHARS: Final = 200

# Once a frame's first byte has arrived, all its bytes must follow within this long; and
# one frame we send must be taken by the socket within this long, or the server is deemed
# to have stopped reading (EngineConfig.io_timeout).
FRAME_COMPLETION_TIMEOUT_SECONDS: Final = 10.0
# A fragmented message may span at most this many frames (continuations included).
MAX_FRAGMENTS_PER_MESSAGE: Final = 1024
# The most one read of a connection's socket takes (what the kernel holds, up to this).
# A burst is parsed, checked and handed over a read at once: larger reads mean fewer
# turns of the driver's loop per message when the server sends faster than we read.
SOCKET_READ_BYTES: Final = 256 * 1024

# --- The connection driver: stopping (c2ws/net/driver.py) ------------------------------
# Ctrl-C (or SIGTERM, --count, --timeout, stop()) ends a run within STOP_WITHIN_SECONDS,
# whatever the connection is doing: a connect under way is abandoned at once, and an open
# connection leaves politely but briefly: at most LEAVE_UNSUBSCRIBE_WAIT_SECONDS for the
# answers to its unsubscribes, then at most LEAVE_CLOSE_WAIT_SECONDS for the server's
# close frame after ours.  Both waits end early as soon as the answers are in (a few
# milliseconds near the server); a server slower than this still gets our close frame
# (1000), only not our wait for its reply.  What is left of the half second is for the
# process to write its last lines and exit.
STOP_WITHIN_SECONDS: Final = 0.5
LEAVE_UNSUBSCRIBE_WAIT_SECONDS: Final = 0.2
LEAVE_CLOSE_WAIT_SECONDS: Final = 0.15

# --- Scripts and daily use: config, check, recordings (issue 14) ---------------------
# (c2ws/config.py, c2ws/probe.py, c2ws/recording.py; limits c2ws sets itself)

# An API key file, or a key piped on stdin, longer than this is not a key file.
MAX_KEY_FILE_BYTES: Final = 64 * 1024
# A config file larger than this is refused rather than parsed.
MAX_CONFIG_FILE_BYTES: Final = 1 << 20
# `c2ws check` warns when the server's clock is this far from ours; the server rejects
# client timestamps more than MAX_CLOCK_SKEW_SECONDS off.
CLOCK_OFFSET_WARN_SECONDS: Final = 20.0
# `c2ws check` / c2ws.check(): the whole check (connect, answers, ping) gives up after this.
CHECK_TIMEOUT_SECONDS: Final = 10.0
# One line of a recording wraps one frame as a JSON string: escaping doubles a JSON
# frame's quotes (a frame of mostly control characters could grow six times: such a
# line is skipped on reading, and counted).
RECORDING_MAX_LINE_BYTES: Final = 2 * MAX_FRAME_BYTES + 4096
# Replay of a recording: frames of one connection held until its request ids are known.
REPLAY_MAX_PENDING_FRAMES: Final = 64
# The recorded feed of the reference server remembers the last seq_id of at most this
# many streams (to skip the replayed duplicates a recording holds).
FEED_MAX_TRACKED_STREAMS: Final = 10_000

# --- The API key (issue 20) -------------------------------------------------------------
# (c2ws/config.py check_api_key, c2ws/redaction.py)

# The shortest API key c2ws accepts.  C2 documents no format ("Bearer myAPIkey"); the
# keys it issues from the profile's API Key tab are generated tokens, far longer than
# this.  The floor is for redaction: the key is replaced by **** wherever a server
# echoes it, and a 1-3 character "key" occurs by chance in unrelated text ("USD", a
# price), which redaction would mangle, showing where the key was.  At 8 characters a
# chance occurrence is rare, and no generated key is shorter.
MIN_API_KEY_LENGTH: Final = 8
# Characters of the key a server's JSON encoder may write escaped in an echo: the two
# JSON must escape, '/' (PHP, some Java), and what HTML-safe encoders escape (.NET's
# default, Go's) as \u00XX.  The rest of printable ASCII is written plainly by every
# encoder we know of.
JSON_MAY_ESCAPE: Final = frozenset("\"\\/&'+<>`")

# --- Payload reads and the library's typed messages (issue 21) -----------------------
# (c2ws/payload.py, c2ws/messages.py; limits c2ws sets itself on what it reads)

# Payload key layouts (the keys of one object, in order) remembered with their
# case-insensitive index; when full, the memory is cleared and starts over.  Objects with
# more keys than PAYLOAD_LAYOUT_MAX_KEYS, or a key longer than PAYLOAD_MAX_CACHED_KEY_CHARS,
# are indexed afresh each time, never remembered.
PAYLOAD_LAYOUTS_KEPT: Final = 256
PAYLOAD_LAYOUT_MAX_KEYS: Final = 64
# Keys and code values up to this length have their normalised form remembered.
PAYLOAD_MAX_CACHED_KEY_CHARS: Final = 64
# Prices and quantities read as Decimal: a magnitude of 10**18 or more, or a non-zero one
# below 10**-18, is no price or quantity (a corrupt or hostile value) and reads as None.
DECIMAL_MAX_DIGITS_BEFORE_POINT: Final = 18
DECIMAL_MAX_DIGITS_AFTER_POINT: Final = 18
# A code field (side, order type, status...) holding an integer of this magnitude or more
# holds no code (and str() of a huge integer is slow, or refused past 4300 digits).
MAX_CODE_NUMBER: Final = 10**6
# -o csv|tsv (c2ws/render/cells.py): the cells of values that repeat from message to
# message (codes, strategy names, symbols, quantities, timestamps) are remembered per
# column, at most CELL_MEMO_ENTRIES each (then forgotten all at once: a feed of ever new
# values costs a miss, never memory), and only for strings up to CELL_MEMO_MAX_CHARS.
CELL_MEMO_ENTRIES: Final = 4096
CELL_MEMO_MAX_CHARS: Final = 128
# A price of zero means "not set" (REST order objects send 0 for an absent limit or stop,
# and 0.0 as the average price of a flat position): it reads as None.
ZERO_PRICE_IS_UNSET: Final = True

# --- The REST API v4: positions, order history, backfill (issue 24) -------------------
# (c2ws/rest/api.py holds every REST rule and assumption; these are its numbers.)
# Documented in shared/reference/c2-rest-api.md unless marked [ours].

REST_DEFAULT_URL: Final = "https://api4-general.collective2.com"
# Paged endpoints take Limit: "default and maximum 1000".
REST_MAX_PAGE_LIMIT: Final = 1000
# [ours] Every request: connect, read, write and pool waits each at most this long.
REST_TIMEOUT_SECONDS: Final = 20.0
# [ours] A closing stream waits this long for its positions-snapshot thread (the
# table's) to end: it then takes no new request, so only one in flight can outlast this.
SNAPSHOT_STOP_WAIT_SECONDS: Final = 2.0
# [ours] A 429 is retried this many times (after the wait its Retry-After asks for, at
# most REST_MAX_RETRY_WAIT_SECONDS; else a jittered backoff), a 5xx, a timeout or a
# network error this many times (jittered backoff from BACKOFF_INITIAL_SECONDS).
REST_MAX_RATE_LIMIT_RETRIES: Final = 5
REST_MAX_SERVER_ERROR_RETRIES: Final = 3
REST_MAX_RETRY_WAIT_SECONDS: Final = 60.0
# [ours] Pages one listing may walk: 10 million orders at the maximum limit; a server
# whose cursor never ends is stopped there (and a cursor that repeats at once).
REST_MAX_PAGES: Final = 10_000
# [ours] Of an error body we read at most this much, and keep this much of its message.
REST_MAX_ERROR_BODY_BYTES: Final = 64 * 1024
REST_MAX_ERROR_TEXT_CHARS: Final = 300
# [ours] A response body larger than this is refused (a page of 1000 orders is ~1 MB).
REST_MAX_BODY_BYTES: Final = 64 << 20

# --- --heal-gaps: the backfill of a gap (c2ws/backfill.py) ---------------------------
# [ours] Nothing links a stream seq_id to a REST SignalId: a gap is backfilled by time
# window, from the last signal held before the hole to the first one after it, each end
# widened by this margin (the envelope's timestamp and the REST PostedDate may come from
# different clocks, and both have whole seconds only); SignalIds the stream delivered
# are left out.
BACKFILL_MARGIN_SECONDS: Final = 60.0
# [ours] A backfill whose fetch fails is tried this many times in all, waiting a
# jittered backoff between tries, then reported (stderr and a backfill.failed line).
BACKFILL_ATTEMPTS: Final = 3
# [ours] SignalIds remembered per strategy of what the stream delivered, to leave out of
# a backfill: more than one replay (REPLAY_LIMIT) and its margin.
BACKFILL_SEEN_SIGNAL_IDS: Final = 4 * REPLAY_LIMIT
# [ours] Orders one backfill writes at most: a gap's window holding more is cut there,
# with a backfill.failed line saying so (memory stays bounded).
BACKFILL_MAX_ORDERS: Final = 100_000

# The msg_type of the lines c2ws writes for what came from the REST API (the server
# never sends them): a strategy's open positions, an order of `c2ws orders`, an order
# written to fill a gap, and a backfill that could not be done.
MSG_POSITIONS_SNAPSHOT: Final = "positions.snapshot"
MSG_ORDER: Final = "order"
MSG_BACKFILL_ORDER: Final = "backfill.order"
MSG_BACKFILL_FAILED: Final = "backfill.failed"
