# ruff: noqa: E501 - the table quotes templates and messages whole
"""Go template execution, case by case, against what Go 1.19's text/template does.

Each row is a template, whether it renders ("ok"), fails to parse or fails to run, and the
text or message. The outputs were produced by Go's text/template (Go 1.19, as the Go confd
peer is built) with confd-like functions; where our message differs on purpose the row says
what Go prints: we never quote a value in an error (store values are not logged), we add
the function's signature to a wrong argument count, our KV pair type is memkv.KVPair (as in
Go confd), and a few locations point at the node that failed where Go points at the last
node it evaluated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from confd.template.golang.errors import GoExecError, GoSyntaxError
from confd.template.golang.functions import SIGNATURES, Signature, go_functions
from confd.template.golang.gotime import GoTime
from confd.template.golang.template import GoTemplate
from confd.template.store import KVPair, KVStore, Reads

# Test-only functions beside confd's: a KV pair maker and a fixed clock.
EXTRA_SIGNATURES = {
    "kv": Signature(("string", "string"), None, "memkv.KVPair"),
    "kvs": Signature((), None, "[]memkv.KVPair"),
    "fixed": Signature((), None, "time.Time"),
    "fixedz": Signature((), None, "time.Time"),
}
SIGS = {**SIGNATURES, **EXTRA_SIGNATURES}


def functions() -> dict:
    fns = go_functions(KVStore({}).view())
    fns.update(
        kv=lambda k, v: KVPair(k, v),
        kvs=lambda: [KVPair("/a", "1"), KVPair("/b", "2")],
        fixed=lambda: GoTime(datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC), 123456789),
        fixedz=lambda: GoTime(
            datetime(2024, 3, 5, 7, 8, 9, tzinfo=timezone(timedelta(hours=1), "CET")), 120000000
        ),
    )
    return fns


def run(source: str) -> tuple[str, str]:
    try:
        return "ok", GoTemplate.parse(source, "t.tmpl", SIGS).execute(functions())
    except GoSyntaxError as exc:
        return "parse", str(exc)
    except GoExecError as exc:
        return "exec", str(exc)


# fmt: off
CASES = [
    ('hello {{ "world" }} {{ 1 }} {{ 1.5 }} {{ true }} {{ nil | print }}', 'exec',
     't.tmpl:1:52: executing "t.tmpl" at <nil>: nil is not a command'),
    ('{{ $x := split "a,b,c" "," }}{{ range $i, $v := $x }}{{ $i }}={{ $v }};{{ end }}{{ len $x }} {{ index $x 1 }} {{ $x }}', 'ok',
     '0=a;1=b;2=c;3 b [a b c]'),
    ('{{ range $k, $v := json "{\\"b\\": 2, \\"a\\": 33554432, \\"c\\": null}" }}{{ $k }}:{{ $v }} {{ end }}', 'ok',
     'a:3.3554432e+07 b:2 c:<no value> '),
    ('{{ with $d := json "{\\"name\\": \\"x\\", \\"n\\": {\\"m\\": 1}}" }}{{ $d.name }} {{ .n.m }} {{ .missing }} {{ .missing.x }}{{ end }}', 'ok',
     'x 1 <no value> <no value>'),
    ('{{ if eq 1 2 }}a{{ else if eq 1 1 }}b{{ else }}c{{ end }}', 'ok',
     'b'),
    ('{{ range kvs }}{{ .Key }}={{ .Value }} {{ end }}{{ kvs }}', 'ok',
     '/a=1 /b=2 [{/a 1} {/b 2}]'),
    ('{{- range $i, $e := split "a b c" " " -}}\n  {{ if eq $e "b" }}{{ continue }}{{ end }}\n  {{- $e }}\n{{- end }}', 'ok',
     'ac'),
    ('{{ range split "a b c" " " }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', 'ok',
     'a'),
    ('{{ range jsonArray "[]" }}x{{ else }}empty{{ end }}', 'ok',
     'empty'),
    ('{{ $n := 0 }}{{ range split "a b c" " " }}{{ $n = add $n 1 }}{{ end }}{{ $n }}', 'ok',
     '3'),
    ('{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" "x" }}{{ template "t" }}{{ block "b" 3 }}<{{ . }}>{{ end }}', 'ok',
     '[x][<no value>]<3>'),
    ('{{ printf "%05.1f|%-4s|%x|%q" 3.14159 "ab" 255 "hi" }}', 'ok',
     '003.1|ab  |ff|"hi"'),
    ('{{ and 1 0 }} {{ or 0 "" "x" }} {{ not 0 }} {{ and }}', 'exec',
     't.tmpl:1:47: executing "t.tmpl" at <and>: wrong number of args for and: want at least 1 got 0 (and is func(reflect.Value, ...reflect.Value) reflect.Value)'),  # Go: 't.tmpl:1:47: executing "t.tmpl" at <and>: wrong number of args for and: want at least 1 got 0'
    ('{{ (fixed).Format "2006-01-02T15:04:05Z07:00" }} {{ fixed.Unix }} {{ fixed.Month }} {{ fixed.Weekday }} {{ fixed.YearDay }} {{ fixedz.Format "Mon Jan _2 15:04:05.000 MST 2006" }} {{ fixedz.UTC }} {{ fixed }}', 'ok',
     '2024-03-05T07:08:09Z 1709622489 March Tuesday 65 Tue Mar  5 07:08:09.120 CET 2024 2024-03-05 06:08:09.12 +0000 UTC 2024-03-05 07:08:09.123456789 +0000 UTC'),
    ('{{ index "héllo" 1 }} {{ slice "hello" 1 3 }} {{ len "héllo" }} {{ slice (split "a b c" " ") 1 }}', 'ok',
     '195 el 6 [b c]'),
    ('{{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }} {{ eq (index "a" 0) 97 }}', 'ok',
     'true true true true true false true'),
    ('{{ html "<a>" }} {{ js "it\'s" }} {{ urlquery "a b" }} {{ print 1 2 "a" 3 }} {{ println 1 "x" }}', 'ok',
     "&lt;a&gt; it\\'s a+b 1 2a3 1 x\n"),
    ('{{ "x" | printf "%s-%s" "a" }} {{ 3 | add 1 }} {{ split "a,b" "," | join "-" | printf "%q" }}', 'exec',
     't.tmpl:1:73: executing "t.tmpl" at <"-">: can\'t handle "-" for arg of type []string'),
    ('{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}', 'ok',
     '21'),
    ('{{ range $i, $v := json "{\\"a\\":[1,2]}" }}{{ $i }}{{ range $v }}{{ . }}{{ end }}{{ end }}', 'ok',
     'a12'),
    ('{{ range (json "{\\"a\\":null}") }}{{ .x }}{{ end }}', 'exec',
     't.tmpl:1:36: executing "t.tmpl" at <.x>: nil pointer evaluating interface {}.x'),
    ('{{ range $v := jsonArray "[null]" }}{{ $v.x }}{{ end }}', 'exec',
     't.tmpl:1:41: executing "t.tmpl" at <$v.x>: nil pointer evaluating interface {}.x'),
    ('{{ $m := json "{\\"a\\":null}" }}{{ $m.a.b }}', 'exec',
     't.tmpl:1:36: executing "t.tmpl" at <$m.a.b>: nil pointer evaluating interface {}.b'),
    ('{{ $m := json "{\\"a\\":null}" }}{{ $m.z.b }}', 'ok',
     '<no value>'),
    ('{{ getv "/x" }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <getv "/x">: error calling getv: key "/x" not found'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <getv "/x">: error calling getv: key does not exist: /x'
    ('{{ range 3 }}{{ end }}', 'exec',
     't.tmpl:1:9: executing "t.tmpl" at <3>: range can\'t iterate over value of type int'),  # Go: 't.tmpl:1:9: executing "t.tmpl" at <3>: range can\'t iterate over 3'
    ('{{ index (split "a" ",") 5 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <index (split "a" ",") 5>: error calling index: index out of range: 5'),
    ('{{ add 1 "x" }}', 'exec',
     't.tmpl:1:9: executing "t.tmpl" at <"x">: expected integer; found "x"'),
    ('{{ add }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <add>: wrong number of args for add: want 2 got 0 (add is func(int, int) int)'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <add>: wrong number of args for add: want 2 got 0'
    ('{{ join (jsonArray "[\\"a\\"]") "," }}', 'ok',
     'a'),  # Go: 't.tmpl:1:19: executing "t.tmpl" at <"[\\"a\\"]">: wrong type for value; expected []string; got []interface {}'
    ('{{ (kv "a" "b").Foo }}', 'exec',
     't.tmpl:1:15: executing "t.tmpl" at <(kv "a" "b").Foo>: can\'t evaluate field Foo in type memkv.KVPair'),  # Go: 't.tmpl:1:11: executing "t.tmpl" at <"b">: can\'t evaluate field Foo in type main.KVPair'
    ('{{ template "nope" }}', 'exec',
     't.tmpl:1:12: executing "t.tmpl" at <{{template "nope"}}>: template "nope" not defined'),
    ('{{ 1 2 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <1>: can\'t give argument to non-function 1'),
    ('{{ .Foo.Bar }} {{ $.x }} {{ . }}', 'ok',
     '<no value> <no value> <no value>'),
    ('{{ with 0 }}x{{ else }}y{{ end }}{{ with "a" }}{{ . }}{{ end }}', 'ok',
     'ya'),
    ('{{ 0x10 }} {{ 1e3 }} {{ 0x1p4 }} {{ \'a\' }} {{ 1i }} {{ -0 }} {{ 1_000 }} {{ 2.0 | printf "%T" }}', 'ok',
     '16 1000 16 97 (0+1i) 0 1000 float64'),
    ('{{ printf "%v %v %v" 1e6 0.1 1e21 }} {{ 1e21 }} {{ 100000.0 }} {{ 1e-5 }} {{ 3.0 }}', 'ok',
     '1e+06 0.1 1e+21 1e+21 100000 1e-05 3'),
    ('{{ range $i, $e := split "a b" " " }}{{ $e = "z" }}{{ . }}{{ $e }}{{ end }}', 'ok',
     'azbz'),
    ('{{ if $x := split "a" "," }}{{ $x }}{{ end }}', 'ok',
     '[a]'),
    ('{{/* c */}}a {{- /* d */ -}} b', 'ok',
     'ab'),
    ('{{ printf "%d" "x" }} {{ printf "%s" }} {{ printf "x" 1 }} {{ print }}', 'ok',
     '%!d(string=x) %!s(MISSING) x%!(EXTRA int=1) '),
    ('{{ len (json "{\\"a\\":1}") }} {{ index (json "{\\"a\\":1}") "a" }} {{ index (json "{\\"a\\":1}") "b" }}', 'ok',
     '1 1 <no value>'),
    ('{{ $x := 1 }}{{ $x = "s" }}{{ $x }}', 'ok',
     's'),
    ('{{ println }}{{ printf "%%" }}', 'ok',
     '\n%'),
    ('{{ fixed.AddDate 0 1 0 }} {{ fixed.Add 3600000000000 }} {{ (fixed.Sub fixed) }} {{ fixed.Format "3:04PM pm Jan January _2 __2 002 .999 ,000" }}', 'ok',
     '2024-04-05 07:08:09.123456789 +0000 UTC 2024-03-05 08:08:09.123456789 +0000 UTC 0s 7:08AM am Mar March  5  65 065 .123 ,123'),
    ('{{ range $k, $v := json "{\\"x\\":{\\"y\\":1}}" }}{{ $v.y }}{{ end }}\n', 'ok',
     '1\n'),
    ('{{ if true }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}', 'ok',
     ''),
    ('{{ if false }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}', 'exec',
     't.tmpl:1:40: executing "t.tmpl" at <$x>: undefined variable: $x'),
    ('{{ $x := 0 }}{{ if false }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}', 'ok',
     '0'),
    ('{{ range $i, $v := split "a b" " " }}{{ else }}{{ $v }}{{ end }}', 'ok',
     ''),
    ('{{ range $v := jsonArray "[]" }}{{ else }}[{{ $v }}]{{ end }}', 'ok',
     '[[]]'),
    ('a  {{- 1 -}}  b\n  {{- 2 }}\nc {{ 3 -}}\n\nd', 'ok',
     'a1b2\nc 3d'),
    ('{{ define "a" }}A{{ template "b" . }}{{ end }}{{ define "b" }}B{{ . }}{{ end }}{{ template "a" 5 }}', 'ok',
     'AB5'),
    ('{{ define "r" }}{{ if . }}{{ template "r" (slice . 1) }}{{ index . 0 }}{{ end }}{{ end }}{{ template "r" (split "a b c" " ") }}', 'ok',
     'cba'),
    ('{{ define "inf" }}{{ template "inf" . }}{{ end }}{{ template "inf" }}', 'exec',
     't.tmpl:1:30: executing "inf" at <{{template "inf" .}}>: exceeded maximum template depth (100000)'),
    ('{{ $a := split "x" "," }}{{ $a.Foo }}', 'exec',
     't.tmpl:1:30: executing "t.tmpl" at <$a.Foo>: can\'t evaluate field Foo in type []string'),
    ('{{ printf "%s" (getv "/missing") }}', 'exec',
     't.tmpl:1:16: executing "t.tmpl" at <getv "/missing">: error calling getv: key "/missing" not found'),  # Go: 't.tmpl:1:16: executing "t.tmpl" at <getv "/missing">: error calling getv: key does not exist: /missing'
    ('{{ index (kv "a" "b") 0 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <index (kv "a" "b") 0>: error calling index: can\'t index item of type memkv.KVPair'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <index (kv "a" "b") 0>: error calling index: can\'t index item of type main.KVPair'
    ('{{ eq (kv "a" "b") (kv "a" "b") }} {{ eq (kv "a" "b") (kv "a" "c") }}', 'ok',
     'true false'),
    ('{{ eq (json "{}") (json "{}") }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <eq (json "{}") (json "{}")>: error calling eq: non-comparable type map[string]interface {}'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <eq (json "{}") (json "{}")>: error calling eq: non-comparable type map[]: map[string]interface {}'
    ('{{ eq nil 1 }} {{ eq 1 nil }}', 'ok',
     'false false'),
    ('{{ lt "a" 1 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <lt "a" 1>: error calling lt: incompatible types for comparison'),
    ('{{ len 3.5 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <len 3.5>: error calling len: len of type float64'),
    ('{{ slice "abc" 2 1 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1'),
    ('{{ index (json "{\\"a\\":[1,{\\"b\\":\\"c\\"}]}") "a" 1 "b" }}', 'ok',
     'c'),
    ('{{ (index (json "{\\"a\\":1}") "zz").foo }}', 'ok',
     '<no value>'),
    ('{{ $x := 5 }}{{ $x.y }}', 'exec',
     't.tmpl:1:18: executing "t.tmpl" at <$x.y>: can\'t evaluate field y in type int'),
    ('{{ range $i, $c := "abc" }}{{ end }}', 'exec',
     't.tmpl:1:19: executing "t.tmpl" at <"abc">: range can\'t iterate over value of type string'),  # Go: 't.tmpl:1:19: executing "t.tmpl" at <"abc">: range can\'t iterate over abc'
    ('{{ with $x := "a" }}{{ $x }}{{ . }}{{ end }}', 'ok',
     'aa'),
    ('{{ if and (eq 1 1) (ne "a" "b") }}yes{{ end }}', 'ok',
     'yes'),
    ('{{ or (getv "/x") "default" }}', 'exec',
     't.tmpl:1:7: executing "t.tmpl" at <getv "/x">: error calling getv: key "/x" not found'),  # Go: 't.tmpl:1:7: executing "t.tmpl" at <getv "/x">: error calling getv: key does not exist: /x'
    ('{{ and 0 (getv "/x") }}', 'ok',
     '0'),
    ('{{ 1 | or 0 }} {{ 0 | and 1 }}', 'ok',
     '1 0'),
    ('{{ (getv "/x") | and 0 }}', 'exec',
     't.tmpl:1:4: executing "t.tmpl" at <getv "/x">: error calling getv: key "/x" not found'),  # Go: 't.tmpl:1:4: executing "t.tmpl" at <getv "/x">: error calling getv: key does not exist: /x'
    ('{{ range $x := kvs }}{{ $x.Key }}{{ $x.Value }}{{ end }}', 'ok',
     '/a1/b2'),
    ('{{ $l := kvs }}{{ (index $l 1).Value }} {{ len $l }}', 'ok',
     '2 2'),
    ('{{ kv "a" "b" | printf "%v %+v" (kv "c" "d") }}', 'ok',
     '{c d} {Key:a Value:b}'),
    ('{{ printf "%v" (json "{\\"k\\":[1.5,\\"s\\",true,null,{}]}") }}', 'ok',
     'map[k:[1.5 s true <nil> map[]]]'),
    ('{{ printf "%6.2f|%-6d|%+d|%x|%X|%o|%b|%e|%g|%c|%U" 3.14159 42 5 255 255 8 5 1234.5678 0.000012345 65 9731 }}', 'ok',
     '  3.14|42    |+5|ff|FF|10|101|1.234568e+03|1.2345e-05|A|U+2603'),
    ('{{ template "x" }}{{ define "x" }}X{{ end }}', 'ok',
     'X'),
    ('{{ block "x" . }}default{{ end }}{{ define "x" }}override{{ end }}', 'parse',
     't.tmpl:1:64: template: multiple definition of template "x"'),
    ('{{ define "x" }}override{{ end }}{{ block "x" . }}default{{ end }}', 'parse',
     't.tmpl:1:64: template: multiple definition of template "x"'),
    ('   {{- /* comment */ -}}   \nx', 'ok',
     'x'),
    ('{{ range $i, $e := split "a,b,c" "," }}{{ if $i }},{{ end }}{{ $e }}{{ end }}', 'ok',
     'a,b,c'),
    ('{{ $x := "a" }}{{ with $y := "b" }}{{ $x = "c" }}{{ end }}{{ $x }}', 'ok',
     'c'),
    ('{{ range split "" "," }}[{{ . }}]{{ end }}', 'ok',
     '[]'),
    ('{{ printf "%s %d" 1 "x" }}', 'ok',
     '%!s(int=1) %!d(string=x)'),
    ('{{ printf "%[2]s %[1]s" "a" "b" }} {{ printf "%*d" 5 1 }}\n', 'ok',
     'b a     1\n'),
    ('{{ range $i, $v := kvs }}{{ $i }}:{{ $v.Key }}{{ end }} {{ range $k, $v := json "{\\"b\\":{\\"c\\":1},\\"a\\":[]}" }}{{ $k }}={{ $v }};{{ end }}', 'ok',
     '0:/a1:/b a=[];b=map[c:1];'),
    ('{{ if and true (or false "") }}a{{ else if not "" }}b{{ end }}', 'ok',
     'b'),
    ('{{ len "" }} {{ len (split "" ",") }} {{ index (json "{\\"a\\":{\\"b\\":[5,6]}}") "a" "b" 1 }}', 'ok',
     '0 1 6'),
    ('{{ printf "%v|%+v|%T" (kv "k" "v") (kv "k" "v") (kv "k" "v") }}', 'ok',
     '{k v}|{Key:k Value:v}|memkv.KVPair'),  # Go: '{k v}|{Key:k Value:v}|main.KVPair'
    ('{{ with $x := 0 }}nonzero{{ else }}zero {{ $x }}{{ end }}', 'ok',
     'zero 0'),
    ('{{ $s := "héllo" }}{{ len $s }} {{ slice $s 0 1 }} {{ printf "%q" (slice $s 1 3) }} {{ index $s 0 }}', 'ok',
     '6 h "é" 104'),
    ('{{ eq (index "a" 0) \'a\' }} {{ printf "%c" (index "a" 0) }} {{ printf "%T" \'a\' }}', 'ok',
     'true a int'),
    ('{{ range $i, $v := jsonArray "[10, 20]" }}{{ if eq $i 1 }}{{ $v }}{{ end }}{{ end }}', 'ok',
     '20'),
    ('{{ $d := json "{\\"n\\":5}" }}{{ if gt $d.n 4.5 }}big{{ end }} {{ lt 1 2 }}', 'ok',
     'big true'),
    ('{{ $d := json "{\\"n\\":5}" }}{{ if gt $d.n 4 }}big{{ end }}', 'exec',
     't.tmpl:1:34: executing "t.tmpl" at <gt $d.n 4>: error calling gt: incompatible types for comparison'),
    ('{{ $x := json "{}" }}{{ $x.a.b.c }}', 'ok',
     '<no value>'),
    ('{{ index nil 1 }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <index nil 1>: error calling index: index of untyped nil'),
    ('{{ slice "abc" }}{{ slice "abc" 1 }}{{ slice (split "a,b,c" ",") 1 2 }}', 'ok',
     'abcbc[b]'),
    ('{{ not (json "{}") }} {{ not (jsonArray "[1]") }} {{ and "" 1 }} {{ or 0 0.0 }}', 'ok',
     'true false  0'),
    ('{{ "a" | printf "%s%s" "b" | printf "%s%s" "c" }}', 'ok',
     'cba'),
    ('{{ (split "a,b" ",") | len }}', 'ok',
     '2'),
    ('{{ printf }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <printf>: wrong number of args for printf: want at least 1 got 0 (printf is func(string, ...interface {}) string)'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <printf>: wrong number of args for printf: want at least 1 got 0'
    ('{{ printf 3 }}', 'exec',
     't.tmpl:1:10: executing "t.tmpl" at <3>: expected string; found 3'),
    ('{{ printf (add 1 2) }}', 'exec',
     't.tmpl:1:11: executing "t.tmpl" at <add 1 2>: wrong type for value; expected string; got int'),  # Go: 't.tmpl:1:17: executing "t.tmpl" at <2>: wrong type for value; expected string; got int'
    ('{{ getv 3 }}', 'exec',
     't.tmpl:1:8: executing "t.tmpl" at <3>: expected string; found 3'),
    ('{{ getv nil }}', 'exec',
     't.tmpl:1:8: executing "t.tmpl" at <nil>: cannot assign nil to string'),
    ('{{ split "a" }}', 'exec',
     't.tmpl:1:3: executing "t.tmpl" at <split>: wrong number of args for split: want 2 got 1 (split is func(string, string) []string)'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <split>: wrong number of args for split: want 2 got 1'
    ('{{ fixed.Format }}', 'exec',
     't.tmpl:1:8: executing "t.tmpl" at <fixed.Format>: wrong number of args for Format: want 1 got 0'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <fixed>: wrong number of args for Format: want 1 got 0'
    ('{{ fixed.Format 1 }}', 'exec',
     't.tmpl:1:8: executing "t.tmpl" at <fixed.Format>: wrong type for value; expected string; got int'),  # Go: 't.tmpl:1:16: executing "t.tmpl" at <1>: expected string; found 1'
    ('{{ fixed.Nope }}', 'exec',
     't.tmpl:1:8: executing "t.tmpl" at <fixed.Nope>: can\'t evaluate field Nope in type time.Time'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <fixed>: can\'t evaluate field Nope in type time.Time'
    ('{{ fixed.Year 2 }}', 'exec',
     't.tmpl:1:8: executing "t.tmpl" at <fixed.Year>: wrong number of args for Year: want 0 got 1'),  # Go: 't.tmpl:1:3: executing "t.tmpl" at <fixed>: wrong number of args for Year: want 0 got 1'
    ('{{ (kv "a" "b").Key.Foo }}', 'exec',
     't.tmpl:1:15: executing "t.tmpl" at <(kv "a" "b").Key.Foo>: can\'t evaluate field Foo in type string'),  # Go: 't.tmpl:1:11: executing "t.tmpl" at <"b">: can\'t evaluate field Foo in type string'
    ('{{ html 1 "<" nil }} {{ js 3 }} {{ urlquery "a" 1 }}', 'ok',
     '1&lt;&lt;no value&gt; 3 a1'),
    ('{{ print "a" "b" 1 2 nil 3 }}', 'ok',
     'ab1 2 <nil> 3'),
    ('{{ \'x\' }} {{ \'\\n\' }} {{ \'\\u00e9\' }} {{ "\\x41\\101\\u0041" }} {{ `a\\nb` }}', 'ok',
     '120 10 233 AAA a\\nb'),
    ('{{ 1e2 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 017 }} {{ -5 }} {{ +5 }} {{ 1.5e-3 }} {{ .5 }}\n', 'ok',
     '100 31 15 5 15 -5 5 0.0015 0.5\n'),

]
# fmt: on


@pytest.mark.parametrize(("source", "kind", "expected"), CASES)
def test_go_template_behaviour(source: str, kind: str, expected: str) -> None:
    assert run(source) == (kind, expected)


def test_exec_error_names_function_and_location() -> None:
    template = GoTemplate.parse('a\n  {{ getv "/nope" }}', "app.conf.tmpl", SIGS,
                                where="/etc/confd/templates/app.conf.tmpl")  # fmt: skip
    with pytest.raises(GoExecError) as caught:
        template.execute(go_functions(KVStore({}).view()))
    error = caught.value
    assert str(error).startswith(
        '/etc/confd/templates/app.conf.tmpl:2:5: executing "app.conf.tmpl" at <getv "/nope">: '
        "error calling getv: "
    )
    assert (error.line, error.column, error.function) == (2, 5, "getv")


def test_exec_error_inside_defined_template_names_it() -> None:
    source = '{{ define "inner" }}\n{{ index . 3 }}{{ end }}{{ template "inner" (split "a" ",") }}'
    kind, message = run(source)
    assert kind == "exec"
    assert message == (
        't.tmpl:2:3: executing "inner" at <index . 3>: error calling index: index out of range: 3'
    )


def test_error_messages_never_quote_store_values() -> None:
    store = KVStore({"/secret": "hunter2-password"})
    template = GoTemplate.parse('{{ range getv "/secret" }}{{ end }}', "t.tmpl", SIGS)
    with pytest.raises(GoExecError) as caught:
        template.execute(go_functions(store.view()))
    assert "hunter2" not in str(caught.value)
    assert "range can't iterate over value of type string" in str(caught.value)


def test_render_records_reads_for_watch() -> None:
    store = KVStore({"/a/x": "1", "/b": "2"})
    reads = Reads()
    view = store.view(reads)
    GoTemplate.parse('{{ range gets "/a/*" }}{{ end }}{{ getv "/b" }}{{ ls "/c" }}', "t", SIGS
                     ).execute(go_functions(view))  # fmt: skip
    assert (reads.keys, reads.patterns, reads.dirs) == ({"/b"}, {"/a/*"}, {"/c"})


def test_sandbox_reaches_no_python_attributes() -> None:
    for source in ("{{ (kv \"a\" \"b\").__class__ }}", "{{ (kv \"a\" \"b\").key }}",
                   "{{ (fixed)._dt }}", "{{ (split \"a\" \",\").append }}"):  # fmt: skip
        kind, message = run(source)
        assert kind in ("exec", "parse"), source
        assert "can't evaluate field" in message or "bad character" in message, message
