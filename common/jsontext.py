"""JSON out, fast: orjson wherever it can write the value, the standard library where it
cannot (an integer past 64 bits, which JSON allows and a payload keeps exactly). Reading
stays with the standard library: orjson reads such an integer as a float, changing it."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer orjson cannot write (or a value neither can: json raises)
        return json.dumps(value, ensure_ascii=False).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()
