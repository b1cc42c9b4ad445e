"""AWS and IMDS backends without a server: settings refused at configure, key and value mapping,
endpoint variables, and the error when boto3 is not installed. (Reads: integration/test_aws.py.)"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from builtin.acm import AcmDatabase, certificate_key
from builtin.aws import INSTALL, load_boto3, local_endpoint, outermost
from builtin.dynamodb import DynamoDBDatabase
from builtin.imds import ImdsDatabase, _entries, _split, imds_endpoint, parse_duration
from builtin.secretsmanager import SecretsManagerDatabase, field_text
from builtin.ssm import SSMDatabase
from plugin_sdk.database import DatabaseError
from tests.test_startup_imports import imported_modules


@pytest.mark.parametrize(
    ("service", "environ", "endpoint"),
    [
        ("dynamodb", {"DYNAMODB_LOCAL": "1"}, "http://localhost:8000"),  # Go confd
        ("dynamodb", {"DYNAMODB_LOCAL": "1", "DYNAMODB_ENDPOINT_URL": "http://d:1"}, "http://d:1"),
        ("dynamodb", {"DYNAMODB_LOCAL": "1", "DYNAMODB_LOCAL_ENDPOINT": "http://e:2"}, "http://e:2"),
        ("dynamodb", {"DYNAMODB_ENDPOINT_URL": "http://d:1"}, None),  # the fork needs the switch
        ("ssm", {"SSM_LOCAL": "1"}, "http://localhost:8001"),  # Go confd
        ("ssm", {"SSM_LOCAL": "1", "SSM_ENDPOINT_URL": "http://s:3"}, "http://s:3"),  # the fork
        ("secretsmanager", {"SECRETSMANAGER_LOCAL": "true",
                            "SECRETSMANAGER_ENDPOINT_URL": "http://m:4"}, "http://m:4"),
        ("secretsmanager", {"SECRETSMANAGER_LOCAL": "true"}, None),
        ("acm", {"ACM_LOCAL": "1", "ACM_ENDPOINT_URL": "http://a:5"}, "http://a:5"),
        ("ssm", {}, None),
    ],
)  # fmt: skip
def test_local_endpoint_variables_of_go_confd_and_the_fork(
    service: str, environ: dict, endpoint: str | None
) -> None:
    assert local_endpoint(service, environ) == endpoint


def test_outermost_drops_covered_and_duplicate_keys() -> None:
    keys = ["/app/db/host", "/app/*", "/app", "/other/", "/", "/other"]
    assert outermost(keys) == ["/"]
    assert outermost(["/app/db/host", "/app/*", "/application", "/app/"]) == [
        "/app",
        "/application",
    ]


@pytest.mark.parametrize(
    ("cls", "config", "message"),
    [
        (DynamoDBDatabase, {}, "backend 'dynamodb': setting 'table' is required"),
        (DynamoDBDatabase, {"table": ""}, "setting 'table' is empty"),
        (DynamoDBDatabase, {"table": "t", "timeout": "0"}, "'timeout' must be above 0"),
        (DynamoDBDatabase, {"table": "t", "nodes": "x"}, "has no setting 'nodes'"),
        (SSMDatabase, {"timeout": "soon"}, "backend 'ssm': setting 'timeout' must be float"),
        (SecretsManagerDatabase, {"secretsmanager_no_flatten": "maybe"}, "must be bool"),
        (SecretsManagerDatabase, {"secretsmanager_version_stage": ""}, "is empty"),
        (ImdsDatabase, {"imds_cache_ttl": "a while"}, "'imds_cache_ttl' must be a duration"),
        (ImdsDatabase, {"token_ttl": "21601"}, "'token_ttl' must be 1..21600"),
        (ImdsDatabase, {"endpoint": "169.254.169.254"}, "is not an http"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(cls: type, config: dict, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        cls({}).configure(config)


def test_imds_disabled_by_the_sdk_variable_is_an_error_naming_it() -> None:
    with pytest.raises(DatabaseError, match="backend 'imds': AWS_EC2_METADATA_DISABLED=true"):
        ImdsDatabase({"AWS_EC2_METADATA_DISABLED": "true"}).configure({})
    ImdsDatabase({"AWS_EC2_METADATA_DISABLED": "false"}).configure({})


def test_acm_export_needs_the_passphrase_variable() -> None:
    with pytest.raises(DatabaseError, match="ACM_PASSPHRASE environment variable"):
        AcmDatabase({}).configure({"acm_export_private_key": "true"})
    with pytest.raises(DatabaseError, match="ACM_PASSPHRASE environment variable"):
        AcmDatabase({"ACM_EXPORT_PRIVATE_KEY": "true"}).configure({})


def test_acm_passphrase_of_a_bad_length_is_refused_without_showing_it() -> None:
    with pytest.raises(DatabaseError, match="4 to 128 bytes") as caught:
        AcmDatabase({"ACM_PASSPHRASE": "abc"}).configure({"acm_export_private_key": "yes"})
    assert "abc" not in str(caught.value)


def test_acm_export_setting_false_wins_over_the_variable() -> None:
    database = AcmDatabase({"ACM_EXPORT_PRIVATE_KEY": "1"})
    database.configure({"acm_export_private_key": "false"})  # no passphrase needed
    assert database._passphrase is None


@pytest.mark.parametrize(
    ("key", "cert"),
    [
        ("/arn:aws:acm:r:1:certificate/x", "/arn:aws:acm:r:1:certificate/x"),
        ("/arn:aws:acm:r:1:certificate/x_chain", "/arn:aws:acm:r:1:certificate/x"),
        ("/arn:aws:acm:r:1:certificate/x_private_key", "/arn:aws:acm:r:1:certificate/x"),
    ],
)
def test_acm_suffixed_keys_read_their_certificate(key: str, cert: str) -> None:
    assert certificate_key(key) == cert


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        (5432, "5432"),
        (1000000, "1000000"),  # the fork prints 1e+06
        (1.5, "1.5"),
        (True, "true"),
        (None, ""),  # the fork prints <nil>
        ({"a": [1, "x"]}, '{"a":[1,"x"]}'),  # the fork prints map[a:[1 x]]
        (["é"], '["é"]'),
    ],
)
def test_secret_json_fields_print_as_confd_prints_values(value: object, text: str) -> None:
    assert field_text(value) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), ("0", 0), ("1.5", 1.5)],
)
def test_imds_cache_ttl_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("key", "category", "path"),
    [
        ("/meta-data/instance-id", "meta-data", "instance-id"),
        ("/instance-id", "meta-data", "instance-id"),  # bare: below meta-data, as the fork
        ("/latest/meta-data/placement/", "meta-data", "placement"),
        ("/meta-data", "meta-data", ""),
        ("/dynamic/instance-identity/document", "dynamic", "instance-identity/document"),
        ("/user-data", "user-data", ""),
        ("/", "meta-data", ""),
    ],
)
def test_imds_keys_map_to_the_fork_categories(key: str, category: str, path: str) -> None:
    assert _split(key) == (category, path)


def test_imds_listing_entries_mark_directories_as_the_service_lists_them() -> None:
    listing = "ami-id\nplacement/\n0=deploy-key\n\nlocal-ipv4\n"
    assert _entries(listing) == [
        ("ami-id", False), ("placement", True), ("0", True), ("local-ipv4", False),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "environ", "endpoint"),
    [
        (None, {}, "http://169.254.169.254"),
        (None, {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}, "http://[fd00:ec2::254]"),
        (None, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://sdk:1/"}, "http://sdk:1"),
        (None, {"IMDS_ENDPOINT": "http://fork:2", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "x"},
         "http://fork:2"),
        ("http://set:3", {"IMDS_ENDPOINT": "http://fork:2"}, "http://set:3"),
    ],
)  # fmt: skip
def test_imds_endpoint_order(setting: str | None, environ: dict, endpoint: str) -> None:
    assert imds_endpoint(setting, environ) == endpoint


def test_missing_boto3_is_an_error_naming_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now fails as if absent
    with pytest.raises(DatabaseError) as caught:
        DynamoDBDatabase({}).configure({"table": "t"})
    assert str(caught.value) == (
        f"backend 'dynamodb' needs boto3, which is not installed: run {INSTALL}"
    )
    assert INSTALL == "pip install 'confd-py[aws]'"


def test_a_broken_boto3_install_names_the_missing_dependency(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    (tmp_path / "boto3").mkdir()
    (tmp_path / "boto3" / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'jmespath\'", name="jmespath")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "boto3", raising=False)
    with pytest.raises(DatabaseError, match="whose dependency jmespath is missing: run pip"):
        SSMDatabase({}).configure({})


def test_botocore_debug_logging_is_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore logs whole requests and answers (secret values) at debug level.
    monkeypatch.setattr(logging.getLogger("botocore"), "level", logging.DEBUG)
    load_boto3("ssm")
    assert logging.getLogger("botocore").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("botocore.endpoint").getEffectiveLevel() >= logging.WARNING


def test_selecting_an_aws_backend_without_boto3_says_how_to_install_it(
    run_confd, make_confdir, tmp_path
) -> None:
    shadow = tmp_path / "no-boto3"  # on PYTHONPATH, this boto3 fails to import as a missing one
    (shadow / "boto3").mkdir(parents=True)
    (shadow / "boto3" / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'boto3\'", name="boto3")\n'
    )
    confdir = make_confdir(
        templates={"a.tmpl": '{{ getv("/app/x") }}\n'},
        resources={"a.toml": f'[template]\nsrc = "a.tmpl"\ndest = "{tmp_path}/a"\n'
                             'keys = ["/app"]\n'},
    )
    env = {"PYTHONPATH": str(shadow)}
    for backend in ("ssm", "secretsmanager"):
        done = run_confd("--onetime", "--backend", backend, "--confdir", str(confdir), env=env)
        assert done.returncode == 1
        message = f"backend {backend!r} needs boto3, which is not installed: run {INSTALL}"
        assert done.stderr.count(message) == 1, done.stderr
        assert "Traceback" not in done.stderr
    listing = run_confd("backends", env=env)  # describing the AWS backends needs no boto3
    assert listing.returncode == 0, listing.stderr
    assert "dynamodb:" in listing.stdout and "table" in listing.stdout


def test_imds_backend_never_imports_boto3(run_confd, make_confdir, tmp_path) -> None:
    confdir = make_confdir(
        templates={"a.tmpl": '{{ getv("/meta-data/ami-id") }}\n'},
        resources={"a.toml": f'[template]\nsrc = "a.tmpl"\ndest = "{tmp_path}/a"\n'
                             'keys = ["/meta-data/ami-id"]\n'},
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "confd", "--onetime", "--backend", "imds",
         "--backend-opt", "endpoint=http://127.0.0.1:9", "--backend-opt", "timeout=1",
         "--confdir", str(confdir)],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("CONFD_", "AWS_"))},
    )  # fmt: skip
    assert "cannot reach the instance metadata service" in done.stderr  # imds really ran
    modules = imported_modules(done.stderr)
    assert "urllib.request" in modules  # the parse saw the backend's own imports
    assert not [m for m in modules if m.split(".")[0] in ("boto3", "botocore")]
