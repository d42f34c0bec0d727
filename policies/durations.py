"""Durations as policies write them: ``90s``, ``15m``, ``4h``, ``7d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a duration; write it like 90s, 15m, 4h, 7d or 1h30m")
    text = value.strip().replace(" ", "")
    pos, seconds = 0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += int(match[1]) * _UNIT[match[2]]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{value!r} is not a duration; write it like 90s, 15m, 4h, 7d or 1h30m")
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    out = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
