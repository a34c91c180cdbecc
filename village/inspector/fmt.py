"""Small formatting helpers shared by the inspector's widgets."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from village.replay import ReplayReader


def short_time(reader: ReplayReader, t: datetime | str | None) -> str:
    """``07:20:10`` on the run's first day, ``d2 07:20`` after it; ``-`` for none."""
    if t is None:
        return "-"
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    day = (t.date() - reader.game_start.date()).days + 1
    return f"{t:%H:%M:%S}" if day == 1 else f"d{day} {t:%H:%M}"


def span(reader: ReplayReader, start: str | None, end: str | None) -> str:
    """``07:00–08:00`` for a plan entry's window."""
    def hm(s: str | None) -> str:
        return "?" if not s else f"{datetime.fromisoformat(s):%H:%M}"
    return f"{hm(start)}–{hm(end)}"


def clip(text: Any, n: int) -> str:
    """One line of at most n characters (… when cut)."""
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: max(0, n - 1)] + "…"


def call_flags(c: dict[str, Any]) -> str:
    """C cached, R retried, I invalid answer, F fallback used, E error."""
    return "".join(f for f, on in (("C", c.get("cached")), ("R", c.get("retries")),
                                   ("I", c.get("invalid")), ("F", c.get("fallback")),
                                   ("E", c.get("error"))) if on) or "·"


def num(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"
