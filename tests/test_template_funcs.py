"""confd's template functions, one table row per case, with Go confd's results and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

from confd.template import functions as template_funcs
from confd.template.functions import SRV, FunctionError, template_functions
from confd.template.store import KVPair, KVStore, Reads
from testsupport.dns_double import DNSDouble

STORE = {
    "/app/port": "8080",
    "/app/name": "web",
    "/app/upstream/b": "10.0.0.2",
    "/app/upstream/a": "10.0.0.3",
    "/app/upstream/c/weight": "5",
    "/app/json": '{"host": "db", "port": 5432}',
}

ALL_NAMES = {
    "get", "gets", "getv", "getvs", "exists", "ls", "lsdir", "base", "dir", "split", "join",
    "json", "jsonArray", "map", "getenv", "datetime", "lookupIP", "lookupIPV4", "lookupIPV6",
    "lookupSRV", "fileExists", "base64Encode", "base64Decode", "parseBool", "atoi", "seq",
    "reverse", "sortByLength", "sortKVByLength", "add", "sub", "mul", "div", "mod", "toUpper",
    "toLower", "contains", "replace", "trimSuffix", "trimPrefix",
}
FORK_NAMES = {  # abtreece/confd's additions
    "hostname", "lookupIfaceIPV4", "lookupIfaceIPV6", "default", "ternary", "coalesce", "empty",
    "toJson", "fromJson", "toPrettyJson", "indent", "nindent", "quote", "squote", "regexMatch",
    "regexFind", "regexReplaceAll", "repeat", "nospace", "snakecase", "camelcase", "kebabcase",
    "dict", "list", "hasKey", "keys", "values", "append", "pluck", "sha256sum",
}


@pytest.fixture
def funcs() -> dict[str, Any]:
    return template_functions(KVStore(STORE).view(Reads()))


def test_function_set_is_confds_and_the_forks(funcs: dict[str, Any]) -> None:
    assert set(funcs) == ALL_NAMES | FORK_NAMES


kv = KVPair

CASES: list[tuple[str, tuple[Any, ...], Any]] = [
    ("get", ("/app/port",), kv("/app/port", "8080")),
    (
        "gets",
        ("/app/upstream/*",),
        [kv("/app/upstream/a", "10.0.0.3"), kv("/app/upstream/b", "10.0.0.2")],
    ),
    ("gets", ("/nothing/*",), []),
    ("getv", ("/app/name",), "web"),
    ("getv", ("/missing", "fallback"), "fallback"),
    ("getvs", ("/app/upstream/*",), ["10.0.0.2", "10.0.0.3"]),
    ("getvs", ("/nothing/*",), []),
    ("exists", ("/app/port",), True),
    ("exists", ("/app/upstream",), False),
    ("ls", ("/app/upstream",), ["a", "b", "c"]),
    ("lsdir", ("/app/upstream",), ["c"]),
    ("lsdir", ("/app",), ["upstream"]),
    ("base", ("/a/b/c",), "c"),
    ("base", ("/a/b/",), "b"),
    ("base", ("",), "."),
    ("base", ("/",), "/"),
    ("base", ("///",), "/"),
    ("base", ("name",), "name"),
    ("dir", ("/a/b/c",), "/a/b"),
    ("dir", ("/a/b/",), "/a/b"),
    ("dir", ("/a",), "/"),
    ("dir", ("a",), "."),
    ("dir", ("",), "."),
    ("dir", ("//a//b",), "/a"),
    ("split", ("a,b,c", ","), ["a", "b", "c"]),
    ("split", ("", ","), [""]),
    ("split", ("a,", ","), ["a", ""]),
    ("split", ("abc", ""), ["a", "b", "c"]),
    ("split", ("10.0.0.1:80", ":"), ["10.0.0.1", "80"]),
    ("join", (["a", "b"], ","), "a,b"),
    ("join", ([], ","), ""),
    ("json", ('{"a": 1, "b": [true, null], "c": "x"}',), {"a": 1, "b": [True, None], "c": "x"}),
    ("json", ("null",), {}),
    ("jsonArray", ('[1, "two", {"three": 3}]',), [1, "two", {"three": 3}]),
    ("jsonArray", ("[]",), []),
    ("jsonArray", ("null",), []),
    ("map", ("a", 1, "b", "two"), {"a": 1, "b": "two"}),
    ("map", (), {}),
    ("base64Encode", ("hello, world",), "aGVsbG8sIHdvcmxk"),
    ("base64Encode", ("",), ""),
    ("base64Encode", ("é",), "w6k="),
    ("base64Decode", ("aGVsbG8sIHdvcmxk",), "hello, world"),
    ("base64Decode", ("aGVs\nbG8=",), "hello"),
    ("base64Decode", ("w6k=",), "é"),
    ("parseBool", ("1",), True),
    ("parseBool", ("t",), True),
    ("parseBool", ("T",), True),
    ("parseBool", ("TRUE",), True),
    ("parseBool", ("true",), True),
    ("parseBool", ("True",), True),
    ("parseBool", ("0",), False),
    ("parseBool", ("f",), False),
    ("parseBool", ("F",), False),
    ("parseBool", ("FALSE",), False),
    ("parseBool", ("false",), False),
    ("parseBool", ("False",), False),
    ("atoi", ("42",), 42),
    ("atoi", ("-7",), -7),
    ("atoi", ("+7",), 7),
    ("atoi", ("007",), 7),
    ("atoi", ("9223372036854775807",), 9223372036854775807),
    ("seq", (1, 5), [1, 2, 3, 4, 5]),
    ("seq", (3, 3), [3]),
    ("seq", (5, 1), []),
    ("seq", (-1, 1), [-1, 0, 1]),
    ("reverse", (["a", "b", "c"],), ["c", "b", "a"]),
    ("reverse", ([kv("/a", "1"), kv("/b", "2")],), [kv("/b", "2"), kv("/a", "1")]),
    ("reverse", ([],), []),
    ("reverse", ("abc",), "abc"),  # confd returns other types unchanged
    # Go's len counts UTF-8 bytes: "é" is 2 long; ties keep their order.
    ("sortByLength", (["ccc", "é", "a", "bb", "x"],), ["a", "x", "é", "bb", "ccc"]),
    (
        "sortKVByLength",
        ([kv("/long/key", "1"), kv("/b", "2"), kv("/a", "3"), kv("/mid", "4")],),
        [kv("/b", "2"), kv("/a", "3"), kv("/mid", "4"), kv("/long/key", "1")],
    ),
    ("add", (2, 3), 5),
    ("sub", (2, 3), -1),
    ("mul", (4, -3), -12),
    ("div", (7, 2), 3),
    ("div", (-7, 2), -3),  # Go truncates toward zero
    ("div", (7, -2), -3),
    ("div", (-7, -2), 3),
    ("mod", (7, 3), 1),
    ("mod", (-7, 3), -1),  # sign of the dividend, as Go
    ("mod", (7, -3), 1),
    ("toUpper", ("MiXed é",), "MIXED É"),
    ("toLower", ("MiXed É",), "mixed é"),
    ("contains", ("haystack", "st"), True),
    ("contains", ("haystack", "x"), False),
    ("contains", ("haystack", ""), True),
    ("replace", ("a-b-c", "-", "+", -1), "a+b+c"),
    ("replace", ("a-b-c", "-", "+", 1), "a+b-c"),
    ("replace", ("a-b-c", "-", "+", 0), "a-b-c"),
    ("replace", ("a-b-c", "-", "+"), "a+b+c"),
    ("replace", ("abc", "", "-", -1), "-a-b-c-"),
    ("replace", ("abc", "", "-", 2), "-a-bc"),
    ("trimSuffix", ("nginx.conf", ".conf"), "nginx"),
    ("trimSuffix", ("nginx.conf", ".yaml"), "nginx.conf"),
    ("trimPrefix", ("/app/port", "/app/"), "port"),
    ("trimPrefix", ("/app/port", "/db/"), "/app/port"),
    ("lookupIP", ("127.0.0.1",), ["127.0.0.1"]),
    ("lookupIP", ("::1",), ["::1"]),
    ("lookupIP", ("bad..name",), []),
    ("lookupIPV4", ("127.0.0.1",), ["127.0.0.1"]),
    ("lookupIPV4", ("::1",), []),
    ("lookupIPV6", ("::1",), ["::1"]),
    ("lookupIPV6", ("127.0.0.1",), []),
]


@pytest.mark.parametrize(("name", "args", "want"), CASES)
def test_function(funcs: dict[str, Any], name: str, args: tuple[Any, ...], want: Any) -> None:
    assert funcs[name](*args) == want


ERRORS: list[tuple[str, tuple[Any, ...], str]] = [
    ("get", ("/missing",), 'key "/missing" not found'),
    ("getv", ("/missing",), 'key "/missing" not found'),
    ("gets", ("[]a]",), "bad pattern"),
    ("getvs", ("/app/[",), "bad pattern"),
    ("join", ("abc", ","), "list of strings"),
    ("join", ([1, 2], ","), "must be strings"),
    ("json", ("[1, 2]",), "not an object"),
    ("json", ("{broken",), "invalid JSON"),
    ("jsonArray", ('{"a": 1}',), "not an array"),
    ("jsonArray", ("",), "invalid JSON"),
    ("map", ("a",), "invalid map call"),
    ("map", (1, "a"), "map keys must be strings"),
    ("base64Decode", ("not base64!",), "illegal base64 data"),
    ("base64Decode", ("aGVsbG8",), "illegal base64 data"),  # padding required, as StdEncoding
    ("base64Decode", ("/w==",), "not UTF-8"),
    ("parseBool", ("yes",), "invalid syntax"),
    ("parseBool", ("",), "invalid syntax"),
    ("parseBool", (" true",), "invalid syntax"),
    ("atoi", ("abc",), "invalid syntax"),
    ("atoi", ("",), "invalid syntax"),
    ("atoi", (" 1",), "invalid syntax"),
    ("atoi", ("1_000",), "invalid syntax"),
    ("atoi", ("1.5",), "invalid syntax"),
    ("atoi", ("٣",), "invalid syntax"),  # non-ASCII digit
    ("atoi", ("9223372036854775808",), "out of range"),
    ("add", ("1", 2), "must be integers"),
    ("sub", (1.5, 2), "must be integers"),
    ("mul", (True, 2), "must be integers"),
    ("div", (1, 0), "integer divide by zero"),
    ("mod", (1, 0), "integer divide by zero"),
    ("seq", ("1", 3), "must be integers"),
    ("seq", (0, 10**9), "longer than"),
    ("toUpper", (1,), "str"),
    ("getv", (), "argument"),
]


@pytest.mark.parametrize(("name", "args", "message"), ERRORS)
def test_function_error(
    funcs: dict[str, Any], name: str, args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(FunctionError) as info:
        funcs[name](*args)
    assert info.value.function == name
    assert message in info.value.reason


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("atoi", "s3cret-token"),
        ("parseBool", "s3cret-token"),
        ("json", '{"password": "s3cret-token"'),
        ("jsonArray", '["s3cret-token"'),
        ("base64Decode", "s3cret-token!"),
    ],
)
def test_error_messages_never_contain_the_value(
    funcs: dict[str, Any], name: str, secret: str
) -> None:
    with pytest.raises(FunctionError) as info:
        funcs[name](secret)
    assert "s3cret" not in info.value.reason
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "args", "want"),
    [
        ({"CONFD_T_VAR": "set"}, ("CONFD_T_VAR",), "set"),
        ({"CONFD_T_VAR": "set"}, ("CONFD_T_VAR", "dflt"), "set"),
        ({}, ("CONFD_T_VAR",), ""),
        ({}, ("CONFD_T_VAR", "dflt"), "dflt"),
        ({"CONFD_T_VAR": ""}, ("CONFD_T_VAR", "dflt"), "dflt"),  # empty counts as unset, as Go
    ],
)
def test_getenv(
    funcs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: tuple[str, ...],
    want: str,
) -> None:
    monkeypatch.delenv("CONFD_T_VAR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert funcs["getenv"](*args) == want


@pytest.mark.parametrize(
    ("make", "want"),
    [
        (lambda tmp: tmp / "file.txt", True),
        (lambda tmp: tmp, True),
        (lambda tmp: tmp / "missing", False),
        (lambda tmp: tmp / "file.txt" / "below", False),
        (lambda tmp: tmp / "dangling-link", False),
    ],
)
def test_file_exists(funcs: dict[str, Any], tmp_path: Path, make: Any, want: bool) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dangling-link").symlink_to(tmp_path / "nowhere")
    assert funcs["fileExists"](str(make(tmp_path))) is want


def test_datetime_is_now_with_local_timezone(funcs: dict[str, Any]) -> None:
    value = funcs["datetime"]()
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert abs(value - datetime.now().astimezone()) < timedelta(seconds=5)


def test_kv_functions_record_into_the_view_reads() -> None:
    reads = Reads()
    funcs = template_functions(KVStore(STORE).view(reads))
    funcs["getv"]("/app/port")
    funcs["ls"]("/app")
    funcs["getvs"]("/app/upstream/*")
    assert reads.keys == {"/app/port"}
    assert reads.dirs == {"/app"}
    assert reads.patterns == {"/app/upstream/*"}


def test_sort_functions_return_new_lists(funcs: dict[str, Any]) -> None:
    original = ["bbb", "a"]
    assert funcs["sortByLength"](original) == ["a", "bbb"]
    assert funcs["reverse"](original) == ["a", "bbb"]
    assert original == ["bbb", "a"]


# -- lookupSRV against a real (local) DNS server -------------------------------------------

SRV_ZONE = {
    # Inserted out of order; confd sorts by target, port, priority and weight joined as text,
    # so port 10 sorts before port 9 on the same target.
    "_http._tcp.example.test.": [
        (10, 5, 9, "b.example.test."),
        (10, 5, 10, "b.example.test."),
        (20, 1, 8080, "a.example.test."),
    ],
    "direct.example.test.": [(0, 0, 53, "ns.example.test.")],
}


@pytest.fixture
def dns_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A DNS double on 127.0.0.1 answering SRV_ZONE; lookupSRV is pointed at it."""
    with DNSDouble() as dns_double:
        dns_double.srv.update(SRV_ZONE)

        def resolver() -> dns.resolver.Resolver:
            res = dns.resolver.Resolver(configure=False)
            res.nameservers = ["127.0.0.1"]
            res.port = dns_double.port
            return res

        monkeypatch.setattr(template_funcs, "srv_resolver", resolver)
        yield dns_double.port


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (
            ("http", "tcp", "example.test"),
            [
                SRV("a.example.test.", 8080, 20, 1),
                SRV("b.example.test.", 10, 10, 5),
                SRV("b.example.test.", 9, 10, 5),
            ],
        ),
        (("", "", "direct.example.test"), [SRV("ns.example.test.", 53, 0, 0)]),
        (("ldap", "tcp", "example.test"), []),
    ],
)
def test_lookup_srv(
    dns_server: int, funcs: dict[str, Any], args: tuple[str, str, str], want: list[SRV]
) -> None:
    assert funcs["lookupSRV"](*args) == want


def test_srv_records_have_go_style_fields(dns_server: int, funcs: dict[str, Any]) -> None:
    record = funcs["lookupSRV"]("", "", "direct.example.test")[0]
    assert (record.Target, record.Port, record.Priority, record.Weight) == (
        record.target, record.port, record.priority, record.weight
    ) == ("ns.example.test.", 53, 0, 0)


def test_every_template_function_is_known_as_confds_own() -> None:
    """The renderer calls these without the sandbox's checks (`is_template_function`): each
    function a template sees must be one, and nothing else may pass for one."""
    from confd.template.functions import is_template_function, template_functions
    from confd.template.store import KVStore

    functions = template_functions(KVStore({}).view(None), include=lambda name, data=None: "")
    assert functions and all(is_template_function(f) for f in functions.values())
    assert not any(is_template_function(f) for f in (len, lambda: 1, str.format, "".join))
