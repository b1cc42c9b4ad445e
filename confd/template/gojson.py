"""Template values as Go's `encoding/json` writes them: `toJson`, `toPrettyJson`, `tojson`.

The fork's `toJson` is Go's `json.Marshal`: compact, map keys sorted, `<`, `>`, `&`, U+2028 and
U+2029 escaped, non-ASCII text kept, whole floats without a fraction (`80`, not `80.0`), and
exponents only below 1e-6 or from 1e21 on (`1e+21`, `1.5e-7`). Python's `json.dumps` differs
on every one of those, so the output is built here; strings reuse `json.dumps` for the escapes
both agree on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

__all__ = ["marshal", "go_float"]

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
         "\u2029": "\\u2029"}
_HTML_CHARS = re.compile("[<>&\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_DEPTH = 1000  # Go stops at the same depth ("exceeded max depth")


def _string(text: str) -> str:
    """A JSON string as Go writes it (invalid UTF-8, here lone surrogates, becomes U+FFFD)."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    quoted = json.dumps(text, ensure_ascii=False)
    return _HTML_CHARS.sub(lambda m: _HTML[m.group()], quoted)


def go_float(value: float) -> str:
    """A float64 as Go's JSON encoder writes it: shortest digits, `e` notation only for
    magnitudes below 1e-6 or from 1e21, and `e-07` shortened to `e-7`."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {_go_special(value)}")
    from decimal import Decimal  # only templates that write floats as JSON load it

    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0")
    exponent += len(digits) - len(text)
    minus = "-" if sign and text else ""
    if not text:
        return "-0" if sign else "0"
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        power = exponent + len(text) - 1
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}".replace(
            "e-0", "e-")
    if exponent >= 0:
        return minus + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return f"{minus}{text[:point]}.{text[point:]}"
    return f"{minus}0.{'0' * -point}{text}"


def _go_special(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def marshal(value: Any, indent: str | None = None) -> str:
    """`value` as Go's `json.Marshal` (or `json.MarshalIndent(value, "", indent)`) writes it.

    Maps, lists, strings, numbers, booleans and None; KV pairs and SRV records as Go's structs
    (`{"Key":...,"Value":...}`); dates as RFC 3339. Anything else is a `TypeError`, as
    Go's "json: unsupported type".
    """
    out: list[str] = []
    _encode(value, out, indent, "", 0)
    return "".join(out)


def _encode(value: Any, out: list[str], indent: str | None, margin: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"json: exceeded max depth {_MAX_DEPTH}")
    if value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(go_float(value))
    elif isinstance(value, Mapping):
        items = sorted((_key(k), v) for k, v in value.items())
        _container("{", "}", [(_string(k) + (": " if indent is not None else ":"), v)
                              for k, v in items], out, indent, margin, depth)
    elif hasattr(value, "_fields") and isinstance(value, tuple):  # KVPair, SRV: Go structs
        fields = [(_string(_go_field(name)) + (": " if indent is not None else ":"), item)
                  for name, item in zip(value._fields, value, strict=True)]
        _container("{", "}", fields, out, indent, margin, depth)
    elif isinstance(value, list | tuple):
        _container("[", "]", [("", item) for item in value], out, indent, margin, depth)
    elif isinstance(value, datetime):
        out.append(_string(value.isoformat().replace("+00:00", "Z")))
    elif isinstance(value, date):
        out.append(_string(value.isoformat()))
    else:
        raise TypeError(f"json: unsupported type {type(value).__name__}")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or not isinstance(key, int | float):
        raise TypeError(f"json: unsupported map key type {type(key).__name__}")
    return str(key) if isinstance(key, int) else go_float(key)


def _go_field(name: str) -> str:
    """A NamedTuple field as Go's exported struct field (`key` -> `Key`)."""
    return name[:1].upper() + name[1:]


def _container(
    opening: str, closing: str, entries: list[tuple[str, Any]], out: list[str],
    indent: str | None, margin: str, depth: int,
) -> None:
    if not entries:
        out.append(opening + closing)
        return
    out.append(opening)
    inner = margin + indent if indent is not None else ""
    for index, (label, item) in enumerate(entries):
        if index:
            out.append(",")
        if indent is not None:
            out.append("\n" + inner)
        out.append(label)
        _encode(item, out, indent, inner, depth + 1)
    if indent is not None:
        out.append("\n" + margin)
    out.append(closing)
