"""Times as a person reads them: in a chosen zone (``--tz``), with the date when it matters.

Only the table uses this; NDJSON carries the server's timestamps untouched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

_UTC: Final = dt.timezone.utc
# Names of the machine's own zone, and of UTC, as --tz accepts them.
LOCAL_NAMES: Final = frozenset({"local"})
UTC_NAMES: Final = frozenset({"utc", "z", "gmt"})


class UnknownZone(ValueError):
    """``--tz`` named no zone this machine knows; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class DisplayZone:
    """Where displayed times are: UTC, the machine's local zone (``tz`` None: looked up per
    instant, so a run across a DST change shows each time right), or an IANA zone."""

    name: str
    tz: dt.tzinfo | None

    @classmethod
    def utc(cls) -> DisplayZone:
        return cls("UTC", _UTC)

    @classmethod
    def local(cls) -> DisplayZone:
        return cls("local", None)

    @classmethod
    def parse(cls, text: str) -> DisplayZone:
        """``local``, ``utc`` or an IANA name such as ``America/New_York``."""
        name = text.strip()
        if name.lower() in LOCAL_NAMES:
            return cls.local()
        if name.lower() in UTC_NAMES:
            return cls.utc()
        # zoneinfo is imported only here: it reads the zone database on first use.
        import zoneinfo

        try:
            return cls(name, zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise UnknownZone(
                f"{text!r} is not a time zone this machine knows: use local, utc or an IANA "
                "name such as America/New_York or Europe/London"
            ) from None

    def at(self, epoch: float) -> dt.datetime:
        """The instant ``epoch`` in this zone (in UTC when the zone cannot show it, e.g.
        the edges of the calendar)."""
        try:
            instant = dt.datetime.fromtimestamp(epoch, _UTC)
        except (OverflowError, OSError, ValueError):
            instant = dt.datetime(1970, 1, 1, tzinfo=_UTC)
        try:
            return instant.astimezone(self.tz)
        except (OverflowError, OSError, ValueError):
            return instant

    def abbreviation(self, epoch: float) -> str:
        """What the zone is called at ``epoch``: ``UTC``, ``CEST``, ``EST``, ``+0530``."""
        return self.at(epoch).tzname() or self.name

    def time_of_day(self, epoch: float) -> str:
        return self.at(epoch).strftime("%H:%M:%S")

    def day(self, epoch: float) -> dt.date:
        return self.at(epoch).date()

    def moment(self, epoch: float, today: dt.date) -> str:
        """``HH:MM:SS`` on ``today``, else ``MM-DD HH:MM`` (a line must stay short)."""
        instant = self.at(epoch)
        if instant.date() == today:
            return instant.strftime("%H:%M:%S")
        return instant.strftime("%m-%d %H:%M")


def day_banner(day: dt.date) -> str:
    """The line above the first row of each day: ``Monday 2024-01-01``."""
    return f"{day:%A} {day.isoformat()}"
