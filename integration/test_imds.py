"""The `imds` backend against the IMDSv2 double: the fork's example, the token flow (token on every
read, renewal before the TTL ends, one retry after a 401), directories as the service lists them,
the fork's key spellings, the cache, and failures as one error naming the backend, never the
token. The shared cases run through it in test_cases.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from confd.backends.registry import default_registry
from integration.harness import read
from integration.imds_double import INSTANCE, ImdsDouble
from integration.servers import free_port
from plugin_sdk.database import Database, DatabaseError

CONFD = Path(sys.executable).with_name("confd")


@pytest.fixture
def double() -> Iterator[ImdsDouble]:
    with ImdsDouble() as served:
        yield served


def open_imds(double: ImdsDouble, **settings: str) -> Database:
    return default_registry().create(
        "imds", {"endpoint": double.url, "imds_cache_ttl": "0", **settings}
    )


def run_confd(
    tmp_path: Path, keys: list[str], template: str, *args: str
) -> subprocess.CompletedProcess[str]:
    confdir = tmp_path / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (confdir / "templates" / "instance.tmpl").write_text(template)
    keys_toml = ", ".join(f'"{k}"' for k in keys)
    (confdir / "conf.d" / "instance.toml").write_text(textwrap.dedent(f"""\
        [template]
        src = "instance.tmpl"
        dest = "{tmp_path / 'instance.conf'}"
        keys = [{keys_toml}]
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFD_", "IMDS_", "AWS_"))}
    return subprocess.run(
        [str(CONFD), "--onetime", "--confdir", str(confdir), "--backend", "imds", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# The fork's test/integration/backends/imds/confdir (instance.toml, instance.tmpl), in Jinja.
FORK_KEYS = [
    "/meta-data/instance-id", "/meta-data/instance-type", "/meta-data/ami-id",
    "/meta-data/tags/instance/", "/meta-data/placement/availability-zone",
    "/meta-data/placement/region", "/meta-data/local-ipv4", "/meta-data/public-ipv4",
]  # fmt: skip
FORK_TEMPLATE = """\
# EC2 Instance Configuration
instance_id={{ getv("/meta-data/instance-id") }}
instance_type={{ getv("/meta-data/instance-type") }}
ami_id={{ getv("/meta-data/ami-id") }}
{%- if exists("/meta-data/tags/instance/Name") %}
name={{ getv("/meta-data/tags/instance/Name") }}
{%- endif %}
{%- if exists("/meta-data/tags/instance/Environment") %}
environment={{ getv("/meta-data/tags/instance/Environment") }}
{%- endif %}
availability_zone={{ getv("/meta-data/placement/availability-zone") }}
region={{ getv("/meta-data/placement/region") }}
local_ip={{ getv("/meta-data/local-ipv4") }}
{%- if exists("/meta-data/public-ipv4") %}
public_ip={{ getv("/meta-data/public-ipv4") }}
{%- endif %}
"""


def test_the_forks_instance_example_renders(double: ImdsDouble, tmp_path: Path) -> None:
    # One tag (Name), no Environment tag, no public address (404): as on a private instance.
    done = run_confd(tmp_path, FORK_KEYS, FORK_TEMPLATE, "--backend-opt",
                     f"endpoint={double.url}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read(tmp_path / "instance.conf") == (
        "# EC2 Instance Configuration\n"
        "instance_id=i-0123456789abcdef0\ninstance_type=t3.micro\nami_id=ami-0abcdef1234567890\n"
        "name=web-1\navailability_zone=us-east-1a\nregion=us-east-1\nlocal_ip=10.0.1.23\n"
    )


def test_every_read_carries_the_one_session_token(double: ImdsDouble) -> None:
    database = open_imds(double)
    database.get_values(["/meta-data/placement", "/meta-data/instance-id"])
    database.get_values(["/meta-data/instance-id"])
    puts = [entry for entry in double.log if entry[0] == "PUT"]
    gets = [entry for entry in double.log if entry[0] == "GET"]
    assert puts == [("PUT", "/latest/api/token", False, 200)]
    assert gets and all(token and status == 200 for _, _, token, status in gets), gets


def test_a_refused_token_is_replaced_and_the_read_retried(double: ImdsDouble) -> None:
    database = open_imds(double)
    assert database.get_values(["/meta-data/instance-id"])
    double.expire_tokens()  # revoked before its TTL: the next GET gets 401
    assert database.get_values(["/meta-data/instance-id"]) == {
        "/meta-data/instance-id": "i-0123456789abcdef0"
    }
    statuses = [(method, status) for method, _, _, status in double.log]
    assert statuses.count(("PUT", 200)) == 2
    assert statuses.count(("GET", 401)) == 1


def test_the_token_is_renewed_before_its_ttl_ends(double: ImdsDouble) -> None:
    double.max_ttl = 2  # the service grants 2 s whatever was asked: the client goes by its answer
    database = open_imds(double)
    database.get_values(["/meta-data/instance-id"])
    time.sleep(2.1)
    database.get_values(["/meta-data/instance-id"])
    statuses = [(method, status) for method, _, _, status in double.log]
    assert statuses.count(("PUT", 200)) == 2
    assert ("GET", 401) not in statuses  # renewed in time, never sent expired


def test_directories_are_read_as_the_service_lists_them(double: ImdsDouble) -> None:
    # The fork takes an answer with newlines for a directory: a one-tag `tags/instance` would be
    # a value and the multi-line identity document a directory. The listing says which is which.
    database = open_imds(double)
    assert database.get_values(["/meta-data/tags/instance"]) == {
        "/meta-data/tags/instance/Name": "web-1"
    }
    document = INSTANCE["dynamic/instance-identity/document"]
    assert database.get_values(["/dynamic/instance-identity"]) == {
        "/dynamic/instance-identity/document": document
    }
    assert database.get_values(["/meta-data/public-keys"]) == {  # listed as `0=deploy`
        "/meta-data/public-keys/0/openssh-key": INSTANCE["meta-data/public-keys/0/openssh-key"]
    }
    assert database.get_values(["/user-data"]) == {"/user-data": INSTANCE["user-data"]}


def test_the_forks_key_spellings_give_the_same_values(double: ImdsDouble) -> None:
    database = open_imds(double)
    assert database.get_values(["/instance-id", "/latest/meta-data/placement"]) == {
        "/meta-data/instance-id": "i-0123456789abcdef0",
        "/instance-id": "i-0123456789abcdef0",
        "/meta-data/placement/availability-zone": "us-east-1a",
        "/meta-data/placement/region": "us-east-1",
        "/latest/meta-data/placement/availability-zone": "us-east-1a",
        "/latest/meta-data/placement/region": "us-east-1",
    }
    everything = database.get_values(["/"])  # the fork: all of meta-data
    assert everything == {
        "/" + path: value for path, value in INSTANCE.items() if path.startswith("meta-data/")
    }


def test_a_missing_path_is_an_absent_key(double: ImdsDouble) -> None:
    assert open_imds(double).get_values(["/meta-data/public-ipv4", "/meta-data/nope/x"]) == {}


def test_answers_are_reused_for_the_cache_ttl(double: ImdsDouble) -> None:
    cached = open_imds(double, imds_cache_ttl="1m")
    cached.get_values(["/meta-data/placement"])
    asked = len(double.log)
    double.set("meta-data/placement/region", "eu-west-1")
    assert cached.get_values(["/meta-data/placement"])["/meta-data/placement/region"] == "us-east-1"
    assert len(double.log) == asked  # nothing asked again within the minute
    fresh = open_imds(double)  # imds_cache_ttl=0
    assert fresh.get_values(["/meta-data/placement"])["/meta-data/placement/region"] == "eu-west-1"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: setattr(d, "refuse_tokens", 403),
         "refused a session token (HTTP 403: the metadata service is disabled"),
        (lambda d: d.fail.update({"/latest/meta-data/": 500}),
         "reading 'meta-data/' from the instance metadata service at http://127.0.0.1"),
    ],
    ids=["token-refused", "server-error"],
)  # fmt: skip
def test_a_failing_service_is_one_error_naming_the_backend_never_the_token(
    double: ImdsDouble, tmp_path: Path, setup, message: str
) -> None:
    open_imds(double).get_values(["/meta-data/ami-id"])  # a token was issued: it must not leak
    issued = list(double.tokens)
    setup(double)
    done = run_confd(tmp_path, ["/meta-data/instance-id"], '{{ getv("/meta-data/instance-id") }}',
                     "--backend-opt", f"endpoint={double.url}", "--log-level", "debug")  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines()
              if "backend 'imds'" in line and " DEBUG " not in line]  # retries: debug
    assert len(errors) == 1, done.stderr
    assert message in errors[0]
    issued += list(double.tokens)
    assert issued and not any(token in done.stdout + done.stderr for token in issued)


@pytest.mark.parametrize("isolate", [[], ["--isolate"]], ids=["in-process", "isolated"])
def test_the_token_is_never_logged(double: ImdsDouble, tmp_path: Path, isolate: list[str]) -> None:
    done = run_confd(tmp_path, ["/meta-data"], '{{ getv("/meta-data/instance-id") }}',
                     "--backend-opt", f"endpoint={double.url}", "--log-level", "debug",
                     *isolate)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert double.tokens and not any(t in done.stdout + done.stderr for t in double.tokens)


def test_an_unreachable_service_is_one_error_naming_it(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    done = run_confd(tmp_path, ["/meta-data/instance-id"], '{{ getv("/meta-data/instance-id") }}',
                     "--backend-opt", f"endpoint={closed}")  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines()
              if "backend 'imds'" in line and " DEBUG " not in line]  # retries: debug
    assert len(errors) == 1, done.stderr
    assert f"cannot reach the instance metadata service at {closed}" in errors[0]


def test_the_endpoint_comes_from_imds_endpoint_as_in_the_fork(
    double: ImdsDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMDS_ENDPOINT", double.url)
    database = default_registry().create("imds", {})
    assert database.get_values(["/meta-data/instance-type"]) == {
        "/meta-data/instance-type": "t3.micro"
    }


def test_reading_a_huge_tree_stops_with_an_error(
    double: ImdsDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    from builtin import imds

    double.load({f"meta-data/many/{i}": "x" for i in range(30)})
    monkeypatch.setattr(imds, "MAX_NODES", 10)
    with pytest.raises(DatabaseError, match="backend 'imds': more than 10 paths"):
        open_imds(double).get_values(["/meta-data/many"])
