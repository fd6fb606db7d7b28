"""The C2 API v4 code values that signal and position payloads most likely carry.

The WebSocket docs publish no payload schema; these are the REST v4 OrderStatusDTO
codes (see ``shared/reference/c2-ws-protocol.md``, "Our choices").  The reference
server's feed publishes them and the table renderer names them: one definition.
"""

from __future__ import annotations

from typing import Final

SIDE_BUY: Final = "1"
SIDE_SELL: Final = "2"
SIDE_NAMES: Final = {SIDE_BUY: "Buy", SIDE_SELL: "Sell"}

ORDER_MARKET: Final = "1"
ORDER_LIMIT: Final = "2"
ORDER_STOP: Final = "3"
ORDER_TYPE_NAMES: Final = {ORDER_MARKET: "Market", ORDER_LIMIT: "Limit", ORDER_STOP: "Stop"}

TIF_DAY: Final = "0"
TIF_GTC: Final = "1"
TIF_NAMES: Final = {TIF_DAY: "Day", TIF_GTC: "GTC"}

OPEN: Final = "O"
CLOSE: Final = "C"
OPEN_CLOSE_NAMES: Final = {OPEN: "Open", CLOSE: "Close"}

STATUS_WORKING: Final = "0"
STATUS_FILLED: Final = "2"
STATUS_CANCELED: Final = "4"
ORDER_STATUS_NAMES: Final = {
    "A": "PendingNew",
    STATUS_WORKING: "Working",
    "1": "Partially filled",
    STATUS_FILLED: "Filled",
    STATUS_CANCELED: "Canceled",
    "5": "Replaced",
    "6": "Pending Cancel",
    "8": "Rejected",
    "C": "Expired",
    "E": "Pending Replace",
}

SIGNAL_TYPE_STRATEGY: Final = 1
SIGNAL_TYPE_MANUAL: Final = 4
