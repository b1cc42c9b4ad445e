"""Go's `fmt` for Go templates: `printf`, `print`, `println`, and how `{{ value }}` prints.

It reproduces Go 1.19's `fmt` on the values Go templates handle (see `values`): the verbs
`%v %+v %#v %T %s %q %x %X %d %o %O %b %c %U %e %E %f %F %g %G %t %%`, width, precision,
`*` and `[n]` argument indexes, the flags `-+# 0`, `%!d(string=x)` for a bad verb,
`%!d(MISSING)`, `%!(EXTRA string=x)`, and Go's printing of values: `true`, `[a b]`,
`map[a:1 b:2]` (sorted keys), `{key value}`, floats as `3.3554432e+07`, `<nil>`.
"""

from __future__ import annotations

import math
from typing import Any

from confd.template.golang.strconv import (
    MAX_RUNE,
    can_backquote,
    format_float,
    is_print,
    quote,
    quote_rune,
    to_bytes,
)
from confd.template.golang.values import STRUCTS, Uint8, go_type_name

__all__ = ["format_float_v", "sprint", "sprintf", "sprintln", "to_text"]

_LDIGITS = "0123456789abcdefx"
_UDIGITS = "0123456789ABCDEFX"
_MAX_WIDTH = 1_000_000  # Go: larger widths and precisions are "too large"


def _is_stringer(value: Any) -> bool:
    return hasattr(type(value), "go_string")


def _sort_key(key: Any) -> tuple[int, Any]:
    """Go's fmtsort order for the map keys templates meet (strings, numbers, bools)."""
    if isinstance(key, bool):
        return (0, key)
    if isinstance(key, int | float):
        return (1, key)
    if isinstance(key, str):
        return (2, to_bytes(key))
    return (3, str(key))


def sorted_items(mapping: dict) -> list[tuple[Any, Any]]:
    """A map's items in Go's order (by key)."""
    keys = list(mapping)
    if all(type(k) is str for k in keys):
        keys.sort()  # code point order is UTF-8 byte order
    else:
        keys.sort(key=_sort_key)
    return [(k, mapping[k]) for k in keys]


class _Printer:
    """One formatting run: output buffer and the flags of the verb being printed (Go's pp)."""

    __slots__ = (
        "buf", "plus", "minus", "sharp", "space", "zero", "plus_v", "sharp_v", "wid", "prec",
        "erroring", "arg", "value", "good_arg_num", "reordered",
    )  # fmt: skip

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.clear_flags()
        self.erroring = False
        self.arg: Any = None
        self.value: Any = None  # the value printValue works on (for bad-verb messages)
        self.good_arg_num = True
        self.reordered = False

    def clear_flags(self) -> None:
        self.plus = self.minus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid: int | None = None
        self.prec: int | None = None

    # -- padding (Go's fmt.pad / writePadding) -----------------------------------------------

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    # -- scalars -----------------------------------------------------------------------------

    def fmt_boolean(self, v: bool) -> None:
        self.pad("true" if v else "false")

    def fmt_integer(self, v: int, base: int, signed: bool, verb: str, digits: str) -> None:
        if not signed and v < 0:
            v &= (1 << 64) - 1
        negative = v < 0
        u = -v if negative else v
        prec = 0
        if self.prec is not None:
            prec = self.prec
            if prec == 0 and u == 0:
                zero, self.zero = self.zero, False
                self.write_padding(self.wid or 0)
                self.zero = zero
                return
        elif self.zero and self.wid is not None:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1
        if base == 10:
            text = str(u)
        elif base == 16:
            text = format(u, "x" if digits is _LDIGITS else "X")
        elif base == 8:
            text = format(u, "o")
        else:
            text = format(u, "b")
        if len(text) < prec:
            text = "0" * (prec - len(text)) + text
        if self.sharp:
            if base == 2:
                text = "0b" + text
            elif base == 8:
                if text[0] != "0":
                    text = "0" + text
            elif base == 16:
                text = "0" + digits[16] + text
        if verb == "O":
            text = "0o" + text
        if negative:
            text = "-" + text
        elif self.plus:
            text = "+" + text
        elif self.space:
            text = " " + text
        zero, self.zero = self.zero, False
        self.pad(text)
        self.zero = zero

    def fmt_unicode(self, u: int) -> None:
        prec = 4
        if self.prec is not None and self.prec > 4:
            prec = self.prec
        text = format(u, "X")
        if len(text) < prec:
            text = "0" * (prec - len(text)) + text
        text = "U+" + text
        if self.sharp and u <= MAX_RUNE and not (0xD800 <= u <= 0xDFFF) and is_print(chr(u)):
            text += " '" + chr(u) + "'"
        zero, self.zero = self.zero, False
        self.pad(text)
        self.zero = zero

    def fmt_c(self, u: int) -> None:
        if u > MAX_RUNE or 0xD800 <= u <= 0xDFFF:
            u = 0xFFFD
        self.pad(chr(u))

    def fmt_qc(self, u: int) -> None:
        self.pad(quote_rune(u if u <= MAX_RUNE else 0xFFFD, ascii_only=self.plus))

    def truncate(self, s: str) -> str:
        if self.prec is not None:
            return s[: self.prec]
        return s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_sx(self, s: str, digits: str) -> None:
        data = to_bytes(s)
        length = len(data)
        if self.prec is not None and self.prec < length:
            length = self.prec
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid is not None:
                self.write_padding(self.wid)
            return
        if self.wid is not None and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        out = []
        if self.sharp:
            out.append("0" + digits[16])
        for i in range(length):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append("0" + digits[16])
            c = data[i]
            out.append(digits[c >> 4] + digits[c & 0xF])
        self.buf.append("".join(out))
        if self.wid is not None and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
            return
        self.pad(quote(s, ascii_only=self.plus))

    def fmt_float(self, v: float, verb: str, prec: int) -> None:
        if self.prec is not None:
            prec = self.prec
        num = format_float(v, verb, prec)
        if num[0] not in "+-":
            num = "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            zero, self.zero = self.zero, False
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad(num)
            self.zero = zero
            return
        if self.sharp and verb != "b":
            num = self._sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            if self.zero and self.wid is not None and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    @staticmethod
    def _sharp_float(num: str, verb: str, prec: int) -> str:
        """`%#g` and friends: keep the decimal point and, for %g, trailing zeros."""
        digits = 0
        if verb in "vgGx":
            digits = 6 if prec == -1 else prec
        tail = ""
        body = num
        for i in range(1, len(num)):
            c = num[i]
            if c in "pP" or (c in "eE" and verb not in "xX"):
                tail = num[i:]
                body = num[:i]
                break
        has_point = "." in body
        saw_nonzero = False
        for c in body[1:]:
            if c == ".":
                continue
            if c != "0":
                saw_nonzero = True
            if saw_nonzero:
                digits -= 1
        if not has_point:
            if len(body) == 2 and body[1] == "0":
                digits -= 1
            body += "."
        if digits > 0:
            body += "0" * digits
        return body + tail

    # -- dispatch (Go's printArg / printValue) -----------------------------------------------

    def bad_verb(self, verb: str) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if self.arg is not None:
            self.buf.append(go_type_name(self.arg) + "=")
            self.print_arg(self.arg, "v")
        elif self.value is not None:
            self.buf.append(go_type_name(self.value) + "=")
            self.print_value(self.value, "v", 0)
        else:
            self.buf.append("<nil>")
        self.buf.append(")")
        self.erroring = False

    def fmt_bool(self, v: bool, verb: str) -> None:
        if verb in "tv":
            self.fmt_boolean(v)
        else:
            self.bad_verb(verb)

    def fmt_int(self, v: int, signed: bool, verb: str) -> None:
        if verb == "v" and self.sharp_v and not signed:
            sharp, self.sharp = self.sharp, True
            self.fmt_integer(v, 16, signed, verb, _LDIGITS)
            self.sharp = sharp
        elif verb in "vd":
            self.fmt_integer(v, 10, signed, verb, _LDIGITS)
        elif verb == "b":
            self.fmt_integer(v, 2, signed, verb, _LDIGITS)
        elif verb in "oO":
            self.fmt_integer(v, 8, signed, verb, _LDIGITS)
        elif verb == "x":
            self.fmt_integer(v, 16, signed, verb, _LDIGITS)
        elif verb == "X":
            self.fmt_integer(v, 16, signed, verb, _UDIGITS)
        elif verb == "c":
            self.fmt_c(v if v >= 0 else MAX_RUNE + 1)
        elif verb == "q":
            self.fmt_qc(v if v >= 0 else MAX_RUNE + 1)
        elif verb == "U":
            self.fmt_unicode(v if v >= 0 else v & ((1 << 64) - 1))
        else:
            self.bad_verb(verb)

    def fmt_float_verb(self, v: float, verb: str) -> None:
        if verb == "v":
            self.fmt_float(v, "g", -1)
        elif verb in "bgGxX":
            self.fmt_float(v, verb, -1)
        elif verb in "feE":
            self.fmt_float(v, verb, 6)
        elif verb == "F":
            self.fmt_float(v, "f", 6)
        else:
            self.bad_verb(verb)

    def fmt_complex(self, v: complex, verb: str) -> None:
        if verb in "vbgGxXfFeE":
            plus = self.plus
            self.buf.append("(")
            self.fmt_float_verb(v.real, verb)
            self.plus = True
            self.fmt_float_verb(v.imag, verb)
            self.buf.append("i)")
            self.plus = plus
        else:
            self.bad_verb(verb)

    def fmt_string(self, v: str, verb: str) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(v)
            else:
                self.fmt_s(v)
        elif verb == "s":
            self.fmt_s(v)
        elif verb == "x":
            self.fmt_sx(v, _LDIGITS)
        elif verb == "X":
            self.fmt_sx(v, _UDIGITS)
        elif verb == "q":
            self.fmt_q(v)
        else:
            self.bad_verb(verb)

    def handle_methods(self, verb: str) -> bool:
        if self.erroring:
            return False
        if verb == "w":  # Sprintf wraps no errors: %w is a bad verb for every operand
            self.bad_verb(verb)
            return True
        if self.sharp_v:
            return False
        if verb in "vsxXq" and _is_stringer(self.arg):
            self.fmt_string(self.arg.go_string(), verb)
            return True
        return False

    def print_arg(self, arg: Any, verb: str) -> None:
        self.arg = arg
        self.value = None
        if arg is None:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb)
            return
        if verb == "T":
            self.fmt_s(go_type_name(arg))
            return
        if verb == "p":
            self.bad_verb(verb)  # no Go pointers to show: addresses are not reproducible
            return
        cls = type(arg)
        if cls is str:
            self.fmt_string(arg, verb)
        elif cls is int:
            self.fmt_int(arg, True, verb)
        elif cls is float:
            self.fmt_float_verb(arg, verb)
        elif cls is bool:
            self.fmt_bool(arg, verb)
        elif cls is Uint8:
            self.fmt_int(arg, False, verb)
        elif cls is complex:
            self.fmt_complex(arg, verb)
        elif not self.handle_methods(verb):
            self.print_value(arg, verb, 0)

    def print_value(self, value: Any, verb: str, depth: int) -> None:  # noqa: C901
        if depth > 0 and value is not None:
            self.arg = value
            if self.handle_methods(verb):
                return
        self.arg = None
        self.value = value
        cls = type(value)
        if value is None:  # a nil interface inside a slice or map
            self.buf.append("interface {}(nil)" if self.sharp_v else "<nil>")
        elif cls is bool:
            self.fmt_bool(value, verb)
        elif cls is str:
            self.fmt_string(value, verb)
        elif cls is float:
            self.fmt_float_verb(value, verb)
        elif isinstance(value, int):
            self.fmt_int(int(value), cls is not Uint8, verb)
        elif cls is complex:
            self.fmt_complex(value, verb)
        elif isinstance(value, dict):
            if self.sharp_v:
                self.buf.append(go_type_name(value) + "{")
            else:
                self.buf.append("map[")
            for i, (k, v) in enumerate(sorted_items(value)):
                if i > 0:
                    self.buf.append(", " if self.sharp_v else " ")
                self.print_value(k, verb, depth + 1)
                self.buf.append(":")
                self.print_value(v, verb, depth + 1)
            self.buf.append("}" if self.sharp_v else "]")
        elif cls in STRUCTS:
            struct = STRUCTS[cls]
            if struct.pointer and depth == 0:
                self.buf.append("&")
            if self.sharp_v:
                self.buf.append(struct.name.lstrip("*"))
            self.buf.append("{")
            for i, (name, getter) in enumerate(struct.fields.items()):
                if i > 0:
                    self.buf.append(", " if self.sharp_v else " ")
                if self.plus_v or self.sharp_v:
                    self.buf.append(name + ":")
                self.print_value(getter(value), verb, depth + 1)
            self.buf.append("}")
        elif isinstance(value, list | tuple):
            if self.sharp_v:
                self.buf.append(go_type_name(value) + "{")
            else:
                self.buf.append("[")
            for i, item in enumerate(value):
                if i > 0:
                    self.buf.append(", " if self.sharp_v else " ")
                self.print_value(item, verb, depth + 1)
            self.buf.append("}" if self.sharp_v else "]")
        else:
            self.buf.append("?" + go_type_name(value) + "?")

    # -- Printf --------------------------------------------------------------------------------

    def do_printf(self, fmt: str, args: tuple) -> None:  # noqa: C901 - Go's doPrintf
        end = len(fmt)
        arg_num = 0
        after_index = False
        self.reordered = False
        i = 0
        buf = self.buf
        nargs = len(args)
        while i < end:
            self.good_arg_num = True
            last = i
            i = fmt.find("%", i)
            if i < 0:
                i = end
            if i > last:
                buf.append(fmt[last:i])
            if i >= end:
                break
            i += 1
            self.clear_flags()
            simple = False
            while i < end:
                c = fmt[i]
                if c == "#":
                    self.sharp = True
                elif c == "0":
                    self.zero = not self.minus
                elif c == "+":
                    self.plus = True
                elif c == "-":
                    self.minus = True
                    self.zero = False
                elif c == " ":
                    self.space = True
                else:
                    if "a" <= c <= "z" and arg_num < nargs:
                        if c == "v":
                            self.sharp_v, self.sharp = self.sharp, False
                            self.plus_v, self.plus = self.plus, False
                        self.print_arg(args[arg_num], c)
                        arg_num += 1
                        i += 1
                        simple = True
                    break
                i += 1
            if simple:
                continue
            arg_num, i, after_index = self.arg_number(arg_num, fmt, i, nargs)
            if i < end and fmt[i] == "*":
                i += 1
                self.wid, arg_num = self.int_from_arg(args, arg_num)
                if self.wid is None:
                    buf.append("%!(BADWIDTH)")
                elif self.wid < 0:
                    self.wid = -self.wid
                    self.minus = True
                    self.zero = False
                after_index = False
            else:
                self.wid, i = _parse_num(fmt, i, end)
                if after_index and self.wid is not None:
                    self.good_arg_num = False
            if i + 1 < end and fmt[i] == ".":
                i += 1
                if after_index:
                    self.good_arg_num = False
                arg_num, i, after_index = self.arg_number(arg_num, fmt, i, nargs)
                if i < end and fmt[i] == "*":
                    i += 1
                    self.prec, arg_num = self.int_from_arg(args, arg_num)
                    if self.prec is not None and self.prec < 0:
                        self.prec = None
                    if self.prec is None:
                        buf.append("%!(BADPREC)")
                    after_index = False
                else:
                    self.prec, i = _parse_num(fmt, i, end)
                    if self.prec is None:
                        self.prec = 0
            if not after_index:
                arg_num, i, after_index = self.arg_number(arg_num, fmt, i, nargs)
            if i >= end:
                buf.append("%!(NOVERB)")
                break
            verb = fmt[i]
            i += 1
            if verb == "%":
                buf.append("%")
            elif not self.good_arg_num:
                buf.append("%!" + verb + "(BADINDEX)")
            elif arg_num >= nargs:
                buf.append("%!" + verb + "(MISSING)")
            else:
                if verb == "v":
                    self.sharp_v, self.sharp = self.sharp, False
                    self.plus_v, self.plus = self.plus, False
                self.print_arg(args[arg_num], verb)
                arg_num += 1
        if not self.reordered and arg_num < nargs:
            self.clear_flags()
            buf.append("%!(EXTRA ")
            for n, arg in enumerate(args[arg_num:]):
                if n > 0:
                    buf.append(", ")
                if arg is None:
                    buf.append("<nil>")
                else:
                    buf.append(go_type_name(arg) + "=")
                    self.print_arg(arg, "v")
            buf.append(")")

    def int_from_arg(self, args: tuple, arg_num: int) -> tuple[int | None, int]:
        if arg_num >= len(args):
            return None, arg_num
        value = args[arg_num]
        num = value if isinstance(value, int) and not isinstance(value, bool) else None
        if num is not None and (num >= 1 << 63 or num < -(1 << 63)):
            num = None
        if num is not None and not -_MAX_WIDTH <= num <= _MAX_WIDTH:
            num = None
        return num, arg_num + 1

    def arg_number(self, arg_num: int, fmt: str, i: int, nargs: int) -> tuple[int, int, bool]:
        if i >= len(fmt) or fmt[i] != "[":
            return arg_num, i, False
        self.reordered = True
        index, width, ok = _parse_arg_number(fmt[i:])
        if ok and 0 <= index < nargs:
            return index, i + width, True
        self.good_arg_num = False
        return arg_num, i + width, ok


def _parse_num(s: str, start: int, end: int) -> tuple[int | None, int]:
    """A decimal number at s[start:end]: (value or None, index after it)."""
    i = start
    num = 0
    while i < end and "0" <= s[i] <= "9":
        if num > _MAX_WIDTH:
            return None, end
        num = num * 10 + ord(s[i]) - 48
        i += 1
    return (num if i > start else None), i


def _parse_arg_number(fmt: str) -> tuple[int, int, bool]:
    if len(fmt) < 3:
        return 0, 1, False
    for i in range(1, len(fmt)):
        if fmt[i] == "]":
            width, newi = _parse_num(fmt, 1, i)
            if width is None or newi != i:
                return 0, i + 1, False
            return width - 1, i + 1, True
    return 0, 1, False


# -- public entry points ----------------------------------------------------------------------


def sprintf(fmt: str, *args: Any) -> str:
    """Go's `fmt.Sprintf`."""
    if "%" not in fmt and not args:
        return fmt
    p = _Printer()
    p.do_printf(fmt, args)
    return "".join(p.buf)


def sprint(*args: Any) -> str:
    """Go's `fmt.Sprint`: operands separated by a space when neither side is a string."""
    p = _Printer()
    prev_string = False
    for n, arg in enumerate(args):
        is_string = type(arg) is str
        if n > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.print_arg(arg, "v")
        prev_string = is_string
    return "".join(p.buf)


def sprintln(*args: Any) -> str:
    """Go's `fmt.Sprintln`: operands separated by spaces, then a newline."""
    p = _Printer()
    for n, arg in enumerate(args):
        if n > 0:
            p.buf.append(" ")
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return "".join(p.buf)


def format_float_v(v: float) -> str:
    """A float64 as `%v` prints it (`1e+06`, `0.1`, `+Inf`)."""
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return format_float(v, "g", -1)


def to_text(value: Any) -> str:
    """`value` as a Go template action prints it (`fmt.Fprint`; nil/missing is `<no value>`)."""
    cls = type(value)
    if cls is str:
        return value
    if cls is int:
        return str(value)
    if value is None:
        return "<no value>"
    if cls is bool:
        return "true" if value else "false"
    if cls is float:
        return format_float_v(value)
    return sprint(value)
