# ruff: noqa: E501, E702 - a data table, one Go value or case per item
"""The fmt cases of ../fmt_go119.jsonl: printed as JSON for fmtgen, which adds Go's output.

Run: python fmt_cases.py | (cd fmtgen && go run .) > out.json, then write one case per line.
"""

from __future__ import annotations

import json
import sys


def S(v: str) -> dict:  # noqa: N802 - one letter per Go type keeps the table readable
    return {"s": v}


def I(v: int) -> dict:  # noqa: N802, E743
    return {"i": v}


def F(v: float | str) -> dict:  # noqa: N802
    return {"f": v}


def B(v: bool) -> dict:  # noqa: N802
    return {"b": v}


def U8(v: int) -> dict:  # noqa: N802
    return {"u8": v}


N = {"n": None}

# fmt: off
values = [S("hello"), S(""), S("héllo wörld"), S('a"b\\c\n'), S("tab\tx"), S("`raw`"), I(0), I(42), I(-42), I(255), I(1<<40), I(-7),
          F(0.0), F(1.5), F(-1.5), F(3.14159265358979), F(1e6), F(1e21), F(1e-7), F(123456789.0), F(0.1), F(100.0), F(33554432.0), F(2.5), F(1e20), F(0.000123),
          F("inf"), F("-inf"), F("nan"), F("-0"),
          B(True), B(False), N, U8(97), U8(200),
          {"ss": ["a", "b c"]}, {"ss": []}, {"is": [1, 2, 3]}, {"m": {"b": 1.0, "a": "x", "c": [1, None], "d": {"z": True}}}, {"m": {}},
          {"a": ["x", 1.5, None, True]}, {"kv": ["/a/b", "val"]}, {"kvs": [["/a", "1"], ["/b", "2"]]}]
verbs = ["%v", "%+v", "%s", "%d", "%q", "%x", "%X", "%o", "%O", "%b", "%e", "%E", "%f", "%F", "%g", "%G", "%t", "%c", "%U", "%T", "%#v", "%#x", "%#o", "%#q", "%#U", "%#g", "%#e", "%#f", "%+q", "% x", "% d", "%+d", "%z", "%w", "%8v", "%-8v|", "%08d", "%-08d|", "%.2f", "%8.3f", "%-10.3e|", "%+.1e", "%010.2f", "%.0f", "%.3g", "%.10g", "%.3s", "%10.3q", "%.0d", "%5.0d|", "%x", "% #x", "%08.3d", "%+08d", "% 8d", "%.20f", "%.17g", "%6.2v", "%05s", "%-5t|", "%.3x", "%#.3x", "%.2X"]
# fmt: on
cases = []
for v in verbs:
    for a in values:
        cases.append(["printf", v, [a]])
misc = [
 ["printf", "%d %s", [I(1)]], ["printf", "%d", [I(1), S("x"), N]], ["printf", "no verbs", [I(3)]], ["printf", "%", []], ["printf", "abc%", [I(1)]],
 ["printf", "%[2]d %[1]d", [I(1), I(2)]], ["printf", "%[3]d", [I(1), I(2)]], ["printf", "%[1]d %d", [I(5), I(6)]], ["printf", "%*d|", [I(5), I(42)]], ["printf", "%-*d|", [I(5), I(42)]],
 ["printf", "%.*f", [I(2), F(3.14159)]], ["printf", "%*d", [S("x"), I(1)]], ["printf", "%.*d", [S("x"), I(1)]], ["printf", "%[0]d", [I(1)]], ["printf", "%[x]d", [I(1)]], ["printf", "%[2]*[1]d", [I(12), I(5)]],
 ["printf", "%!", []], ["printf", "%%d %d", [I(1)]], ["printf", "%5%|", []], ["printf", "%.", [I(1)]], ["printf", "%-", [I(1)]], ["printf", "%3", [I(1)]],
 ["printf", "%s and %v", [N, N]], ["printf", "%d", [N]], ["printf", "%x", [{"ss": ["ab", "cd"]}]], ["printf", "%q", [{"ss": ["ab", "cd"]}]], ["printf", "%d", [{"ss": ["ab"]}]], ["printf", "%s", [{"is": [1, 2]}]],
 ["printf", "%s", [{"m": {"k": 1.0}}]], ["printf", "%d", [{"m": {"k": 1.0}}]], ["printf", "%s", [{"kv": ["k", "v"]}]], ["printf", "%d", [{"kv": ["k", "v"]}]], ["printf", "%v %v", [F(1e6), F(1e-5)]],
 ["printf", "%6.2f%%", [F(99.5)]], ["printf", "%x", [S("")]], ["printf", "%8x|", [S("")]], ["printf", "%c%c%c", [I(72), I(0x1F600), I(-1)]], ["printf", "%q", [I(0x1F600)]], ["printf", "%+q", [I(0xe9)]], ["printf", "%U", [I(0x1F600)]],
 ["printf", "%.2s|%.0s|%.10s", [S("héllo"), S("x"), S("ab")]], ["printf", "%5s|%-5s|", [S("é"), S("é")]], ["printf", "%v", [{"a": [[1, 2], {"x": None}]}]],
 ["print", "", [S("a"), S("b")]], ["print", "", [I(1), I(2)]], ["print", "", [S("a"), I(1), I(2), S("b"), I(3)]], ["print", "", [N, N]], ["print", "", [F(1.5), B(True), {"ss": ["x"]}]], ["print", "", []],
 ["println", "", [S("a"), I(1), N]], ["println", "", []], ["print", "", [{"kv": ["k", "v"]}, {"kvs": [["a", "b"]]}]],
]
cases += misc
json.dump(cases, sys.stdout)


