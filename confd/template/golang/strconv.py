"""Go's `strconv` where templates need it: quoting, unquoting literals, numbers, float text.

Go strings are bytes; here they are `str`, with bytes that are not UTF-8 carried as
surrogate escapes (U+DC80..U+DCFF, Python's `surrogateescape`), so `"\\xff"` in a template and a
byte-sliced string round-trip exactly. Float formatting reproduces `strconv.FormatFloat` for
float64: shortest digits come from Python's `repr` (both are shortest round-trip), fixed digits
from Python's correctly rounded `%e`/`%f`.
"""

from __future__ import annotations

import math
import struct

__all__ = [
    "can_backquote",
    "format_float",
    "is_print",
    "parse_float",
    "parse_int",
    "parse_uint",
    "quote",
    "quote_rune",
    "to_bytes",
    "unquote",
    "unquote_char",
]

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
}
_UNESCAPES = {
    "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92,
}  # fmt: skip
MAX_RUNE = 0x10FFFF


def to_bytes(s: str) -> bytes:
    """The Go bytes of string `s` (UTF-8, surrogate escapes back to raw bytes)."""
    return s.encode("utf-8", "surrogateescape")


def from_bytes(b: bytes) -> str:
    """A Go string from bytes (invalid UTF-8 kept as surrogate escapes)."""
    return b.decode("utf-8", "surrogateescape")


def is_print(c: str) -> bool:
    """Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and U+0020."""
    return c.isprintable() and not ("\ud800" <= c <= "\udfff")


def _raw_byte(c: str) -> int | None:
    """The byte a surrogate escape stands for, else None."""
    if "\udc80" <= c <= "\udcff":
        return ord(c) - 0xDC00
    return None


def _quote(s: str, quote_char: str, ascii_only: bool) -> str:
    out = [quote_char]
    for c in s:
        if c == quote_char:
            out.append("\\" + c)
            continue
        raw = _raw_byte(c)
        if raw is not None:
            out.append(f"\\x{raw:02x}")
            continue
        if c == "\\":
            out.append("\\\\")
            continue
        code = ord(c)
        if (code < 0x80 or not ascii_only) and is_print(c):
            out.append(c)
            continue
        escape = _SIMPLE_ESCAPES.get(c)
        if escape is not None:
            out.append(escape)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif "\ud800" <= c <= "\udfff":  # a lone surrogate is not a rune: Go's RuneError
            out.append("\\ufffd" if ascii_only else "\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote_char)
    return "".join(out)


def quote(s: str, ascii_only: bool = False) -> str:
    """`s` as a double-quoted Go literal (`strconv.Quote`, or `QuoteToASCII`)."""
    return _quote(s, '"', ascii_only)


def quote_rune(code: int, ascii_only: bool = False) -> str:
    """A rune as a single-quoted Go literal (`strconv.QuoteRune`); invalid runes as U+FFFD."""
    if code > MAX_RUNE or 0xD800 <= code <= 0xDFFF or code < 0:
        code = 0xFFFD
    return _quote(chr(code), "'", ascii_only)


def can_backquote(s: str) -> bool:
    """Whether `s` can be written as a raw string literal without change (`CanBackquote`)."""
    for c in s:
        if c == "`" or c == "\ufeff" or _raw_byte(c) is not None:
            return False
        if c < " " and c != "\t" or c == "\x7f":
            return False
    return True


def unquote_char(s: str, i: int, quote_char: str) -> tuple[int, bool, int]:
    """Decode one character or escape of a quoted literal at `s[i]`.

    Returns (value, is_byte, next index); `is_byte` is True for `\\x`/octal escapes, which
    stand for one byte rather than a rune. Raises ValueError ("invalid syntax") on a bad escape.
    """
    c = s[i]
    if c == quote_char and quote_char in "'\"":
        raise ValueError("invalid syntax")
    if c != "\\":
        raw = _raw_byte(c)
        if raw is not None:
            return raw, True, i + 1
        return ord(c), False, i + 1
    if i + 1 >= len(s):
        raise ValueError("invalid syntax")
    c = s[i + 1]
    i += 2
    if c in _UNESCAPES:
        return _UNESCAPES[c], False, i
    if c in "xuU":
        n = {"x": 2, "u": 4, "U": 8}[c]
        digits = s[i : i + n]
        if len(digits) < n or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise ValueError("invalid syntax")
        value = int(digits, 16)
        if c == "x":
            return value, True, i + n
        if value > MAX_RUNE or 0xD800 <= value <= 0xDFFF:
            raise ValueError("invalid syntax")
        return value, False, i + n
    if "0" <= c <= "7":
        digits = s[i - 1 : i + 2]
        if len(digits) < 3 or any(d not in "01234567" for d in digits):
            raise ValueError("invalid syntax")
        value = int(digits, 8)
        if value > 255:
            raise ValueError("invalid syntax")
        return value, True, i + 2
    if c in "'\"":
        if c != quote_char:
            raise ValueError("invalid syntax")
        return ord(c), False, i
    raise ValueError("invalid syntax")


def unquote(literal: str) -> str:
    """The value of a Go string literal, `"..."` or `` `...` `` (`strconv.Unquote`).

    Raises ValueError("invalid syntax") as Go does.
    """
    if len(literal) < 2 or literal[0] != literal[-1]:
        raise ValueError("invalid syntax")
    q = literal[0]
    body = literal[1:-1]
    if q == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    if q != '"' or "\n" in body:
        raise ValueError("invalid syntax")
    if "\\" not in body:
        if '"' in body:
            raise ValueError("invalid syntax")
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        value, is_byte, i = unquote_char(body, i, '"')
        if is_byte:
            out.append(value)
        else:
            out += chr(value).encode("utf-8", "surrogateescape")
    return from_bytes(bytes(out))


# -- numbers -------------------------------------------------------------------------------

_BASES = {"x": 16, "o": 8, "b": 2}
_DIGITS = {16: "0123456789abcdefABCDEF", 10: "0123456789", 8: "01234567", 2: "01"}


def _underscores_ok(s: str) -> bool:
    """Go's underscoreOK: `_` only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in "+-":
        s = s[1:]
    hexadecimal = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexadecimal = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexadecimal and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _parse_unsigned(s: str) -> int | None:
    """A non-negative integer literal in Go's base-0 syntax, or None."""
    if not s:
        return None
    base = 10
    body = s
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in _BASES:
        base = _BASES[s[1].lower()]
        body = s[2:]
    elif s[0] == "0" and len(s) > 1:
        base = 8
        body = s[1:]
    if "_" in s:
        if not _underscores_ok(s):
            return None
        body = body.replace("_", "")
    if not body or any(c not in _DIGITS[base] for c in body):
        return None
    return int(body, base)


def parse_uint(s: str) -> int | None:
    """`strconv.ParseUint(s, 0, 64)`, or None on error."""
    value = _parse_unsigned(s)
    if value is None or value >= 1 << 64:
        return None
    return value


def parse_int(s: str) -> int | None:
    """`strconv.ParseInt(s, 0, 64)`, or None on error."""
    sign = 1
    body = s
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        body = s[1:]
    value = _parse_unsigned(body)
    if value is None:
        return None
    value *= sign
    if not -(1 << 63) <= value < 1 << 63:
        return None
    return value


def parse_float(s: str) -> float | None:
    """`strconv.ParseFloat(s, 64)` for the literals the template lexer produces, or None."""
    if "_" in s:
        if not _underscores_ok(s):
            return None
        s = s.replace("_", "")
    body = s.lstrip("+-")
    if len(s) - len(body) > 1 or not body:
        return None
    try:
        if body[:2].lower() == "0x":
            if "p" not in body.lower():
                return None  # a hex mantissa needs a p exponent
            value = float.fromhex(s)
        else:
            if any(c not in "0123456789.eE+-" for c in body):
                return None
            value = float(s)
    except ValueError:
        return None
    if math.isinf(value):
        return None  # Go: out of range is an error
    return value


# -- float formatting ------------------------------------------------------------------------


def _digits(text: str) -> tuple[str, int]:
    """Decimal digits and decimal-point position of a non-negative number's text.

    `text` is a Python float repr or `%e` output; the result `(d, dp)` means 0.d × 10**dp, with
    trailing zeros removed and zero as ("", 0), as Go's decimal type.
    """
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    dp = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    stripped = stripped.rstrip("0")
    if not stripped:
        return "", 0
    return stripped, dp


def _fmt_e(neg: bool, d: str, dp: int, prec: int, verb: str) -> str:
    out = ["-" if neg else "", d[0] if d else "0"]
    if prec > 0:
        out.append(".")
        frac = d[1 : prec + 1]
        out.append(frac + "0" * (prec - len(frac)))
    exp = 0 if not d else dp - 1
    out.append(verb)
    out.append("-" if exp < 0 else "+")
    exp = abs(exp)
    out.append(f"{exp:02d}")
    return "".join(out)


def _fmt_f(neg: bool, d: str, dp: int, prec: int) -> str:
    out = ["-" if neg else ""]
    if dp > 0:
        out.append(d[:dp] + "0" * max(dp - len(d), 0))
    else:
        out.append("0")
    if prec > 0:
        out.append(".")
        out.append("".join(d[j] if 0 <= j < len(d) else "0" for j in range(dp, dp + prec)))
    return "".join(out)


def _float_bits(v: float) -> tuple[bool, int, int]:
    """Sign, biased-exponent-adjusted mantissa and exponent, as Go's genericFtoa sees them."""
    bits = struct.unpack(">Q", struct.pack(">d", v))[0]
    neg = bits >> 63 != 0
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp += 1
    else:
        mant |= 1 << 52
    return neg, mant, exp - 1023


def _fmt_b(v: float) -> str:
    neg, mant, exp = _float_bits(v)
    exp -= 52
    return f"{'-' if neg else ''}{mant}p{'+' if exp >= 0 else ''}{exp}"


def _fmt_x(v: float, prec: int, verb: str) -> str:
    neg, mant, exp = _float_bits(v)
    if mant == 0:
        exp = 0
    mant <<= 60 - 52
    while mant != 0 and mant & (1 << 60) == 0:
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    digits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
    out = ["-" if neg else "", "0", verb, str((mant >> 60) & 1)]
    mant = (mant << 4) & ((1 << 64) - 1)
    if prec < 0 and mant != 0:
        out.append(".")
        while mant != 0:
            out.append(digits[(mant >> 60) & 15])
            mant = (mant << 4) & ((1 << 64) - 1)
    elif prec > 0:
        out.append(".")
        for _ in range(prec):
            out.append(digits[(mant >> 60) & 15])
            mant = (mant << 4) & ((1 << 64) - 1)
    out.append("p" if verb == "x" else "P")
    out.append("-" if exp < 0 else "+")
    exp = abs(exp)
    out.append(f"{exp:02d}")
    return "".join(out)


def format_float(v: float, verb: str, prec: int) -> str:
    """`strconv.FormatFloat(v, verb, prec, 64)`; prec -1 means the shortest exact digits."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if verb == "b":
        return _fmt_b(v)
    if verb in "xX":
        return _fmt_x(v, prec, verb)
    neg = math.copysign(1.0, v) < 0
    a = -v if neg else v
    shortest = prec < 0
    if shortest:
        d, dp = _digits(repr(a))
        if verb in "eE":
            prec = max(len(d) - 1, 0)
        elif verb == "f":
            prec = max(len(d) - dp, 0)
        else:
            prec = len(d)
    elif verb == "f":
        return _fmt_f(neg, *_digits(f"{a:.{prec}f}"), prec)
    else:
        if verb in "gG" and prec == 0:
            prec = 1
        n = prec + 1 if verb in "eE" else prec
        d, dp = _digits(f"{a:.{max(n - 1, 0)}e}")
    if verb in "eE":
        return _fmt_e(neg, d, dp, prec, verb)
    if verb == "f":
        return _fmt_f(neg, d, dp, prec)
    # g, G
    eprec = prec
    if eprec > len(d) and len(d) >= dp:
        eprec = len(d)
    if shortest:
        eprec = 6
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        if prec > len(d):
            prec = len(d)
        return _fmt_e(neg, d, dp, prec - 1, "e" if verb == "g" else "E")
    if prec > dp:
        prec = len(d)
    return _fmt_f(neg, d, dp, max(prec - dp, 0))
