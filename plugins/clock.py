"""First-party plugin: the current date and time, written exactly as a user's plugin would be."""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qwen_tui import hookimpl, tool


@tool(read_only=True)
def current_time(timezone: str = "UTC") -> str:
    """The current date and time (ISO 8601, with the weekday) in a time zone.

    Args:
        timezone: an IANA time zone name such as "Europe/Paris" or "America/New_York".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}; use an IANA name like 'Europe/Paris'") from None
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, {timezone})"


@hookimpl
def register_tools(register):
    register(current_time)
