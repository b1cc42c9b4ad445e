"""The AWS backends against moto's server: what Go confd and the fork read (layouts, paging,
decryption, flattening, certificates), and each failure (unreachable endpoint, no or refused
credentials, access denied, missing table) as one clear error naming the backend, with no secret
in any error or log. The shared cases run through them in test_cases.py."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from confd.backends.registry import default_registry
from integration.harness import read, wait_for
from integration.servers import MotoServer, aws_environment, free_port, terminate
from plugin_sdk.database import Database, DatabaseError

CONFD = Path(sys.executable).with_name("confd")
AWS = ["dynamodb", "ssm", "secretsmanager", "acm"]
ACCOUNT = "123456789012"
SECRET_VALUE = "s3cr3t-value-never-in-a-log"
CERT_ARN = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000"
_AWS_VARIABLES = ("AWS_", "DYNAMODB_", "SSM_", "SECRETSMANAGER_", "ACM_", "IMDS_", "CONFD_")


def clean_environ() -> dict[str, str]:
    """This process's environment without any AWS, endpoint or confd variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_AWS_VARIABLES)}


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The session's moto server, emptied, and this process pointed at it."""
    moto_server.reset()
    for name in os.environ:
        if name.startswith(_AWS_VARIABLES):
            monkeypatch.delenv(name)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


def open_backend(name: str, **settings: str) -> Database:
    return default_registry().create(name, settings)


def run_confd(
    confdir: Path, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONFD), "--onetime", "--confdir", str(confdir), *args],
        env={**clean_environ(), **env}, capture_output=True, text=True, timeout=timeout,
        cwd=confdir,
    )  # fmt: skip


def make_confdir(base: Path, keys: list[str], template: str) -> Path:
    confdir = base / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (confdir / "templates" / "out.tmpl").write_text(template)
    (confdir / "conf.d" / "out.toml").write_text(textwrap.dedent(f"""\
        [template]
        src = "out.tmpl"
        dest = "{base / 'out.conf'}"
        keys = {json.dumps(keys)}
        """))
    return confdir


def create_table(server: MotoServer, name: str = "confd") -> None:
    server.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def put_items(server: MotoServer, items: dict[str, dict], table: str = "confd") -> None:
    client = server.client("dynamodb")
    for key, value in items.items():
        client.put_item(TableName=table, Item={"key": {"S": key}, "value": value})


# --- dynamodb -----------------------------------------------------------------------------------


def test_dynamodb_reads_the_key_and_below_never_a_longer_name(aws: MotoServer) -> None:
    create_table(aws)
    put_items(aws, {
        "/app": {"S": "top"}, "/app/name": {"S": "inside"}, "/app/db/host": {"S": "10.0.0.1"},
        "/application/name": {"S": "outside"}, "/other": {"S": "x"},
    })  # fmt: skip
    database = open_backend("dynamodb", table="confd")
    assert database.get_values(["/app"]) == {
        "/app": "top", "/app/name": "inside", "/app/db/host": "10.0.0.1",
    }  # fmt: skip
    assert database.get_values(["/app/name", "/other/*"]) == {"/app/name": "inside", "/other": "x"}
    assert len(database.get_values(["/"])) == 5


def test_dynamodb_skips_a_non_string_value_warning_once_by_key(
    aws: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Go confd's own integration data has such an item ("/upstream/broken" = N 4711).
    create_table(aws)
    put_items(aws, {"/upstream/app1": {"S": "10.0.1.10:8080"}, "/upstream/broken": {"N": "4711"}})
    database = open_backend("dynamodb", table="confd")
    with caplog.at_level("WARNING"):
        assert database.get_values(["/upstream"]) == {"/upstream/app1": "10.0.1.10:8080"}
        database.get_values(["/upstream"])
    warnings = [r.getMessage() for r in caplog.records if "/upstream/broken" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "not a string" in warnings[0] and "4711" not in caplog.text


def test_dynamodb_reads_every_page_of_the_scan(aws: MotoServer) -> None:
    # DynamoDB answers at most 1 MB per Scan page: 15 items of 100 kB take two pages. Go confd
    # reads only the first page.
    create_table(aws)
    big = "x" * 100_000
    put_items(aws, {f"/big/{i:02d}": {"S": big} for i in range(15)})
    scan = aws.client("dynamodb").scan(TableName="confd")
    assert "LastEvaluatedKey" in scan, "moto answered in one page: the test proves nothing"
    values = open_backend("dynamodb", table="confd").get_values(["/big"])
    assert sorted(values) == [f"/big/{i:02d}" for i in range(15)]


def test_dynamodb_missing_table_is_one_error_naming_the_table(
    aws: MotoServer, tmp_path: Path
) -> None:
    confdir = make_confdir(tmp_path, ["/app"], '{{ getv("/app/name") }}\n')
    done = run_confd(
        confdir, "--backend", "dynamodb", "--backend-opt", "table=nosuch", env=aws.env()
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "backend 'dynamodb'" in line]
    assert len(errors) == 1, done.stderr
    assert "table 'nosuch' does not exist" in errors[0]
    assert f"endpoint {aws.url}" in errors[0]


def test_dynamodb_without_region_reads_the_instance_region_from_imds(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integration.imds_double import ImdsDouble

    create_table(aws)
    put_items(aws, {"/app/name": {"S": "inside"}})
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    with ImdsDouble() as double:  # placement/region is us-east-1, where the table is
        monkeypatch.setenv("IMDS_ENDPOINT", double.url)
        database = open_backend("dynamodb", table="confd")
        assert database.get_values(["/app"]) == {"/app/name": "inside"}
        assert ("GET", "/latest/meta-data/placement/region", True, 200) in double.log


def test_watch_polls_dynamodb_and_renders_once_the_endpoint_answers(tmp_path: Path) -> None:
    # Server down when confd starts: each poll fails (one error naming the backend), then the
    # server comes up and the next poll renders.
    server = MotoServer()
    confdir = make_confdir(tmp_path, ["/app"], '{{ getv("/app/name") }}\n')
    log = tmp_path / "confd.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(CONFD), "--watch", "--interval", "1", "--confdir", str(confdir),
             "--backend", "dynamodb", "--backend-opt", "table=confd"],
            env={**clean_environ(), **server.env()}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: "cannot reach" in log.read_text(), "an unreachable error", log.read_text)
        with server:
            create_table(server)
            put_items(server, {"/app/name": {"S": "up"}})
            out_file = tmp_path / "out.conf"
            wait_for(lambda: read(out_file) == "up\n", "render after start", log.read_text)
            # the watch retries after --watch-error-backoff (2 s) and then says it polls
            wait_for(lambda: "cannot watch" in log.read_text(), "the polling warning",
                     log.read_text)
            assert process.poll() is None, log.read_text()
    finally:
        terminate(process)
        server.cleanup()
    text = log.read_text()
    assert text.count("cannot watch; polling it every 1s") == 1, text


# --- ssm ----------------------------------------------------------------------------------------


def test_ssm_reads_parameters_below_and_at_the_key_decrypted(aws: MotoServer) -> None:
    client = aws.client("ssm")
    for name, value, kind in [
        ("/app", "top", "String"), ("/app/name", "inside", "String"),
        ("/app/secret", SECRET_VALUE, "SecureString"), ("/app/list", "a,b,c", "StringList"),
        ("/application/name", "outside", "String"), ("/exact", "only", "String"),
    ]:  # fmt: skip
        client.put_parameter(Name=name, Value=value, Type=kind)
    database = open_backend("ssm")
    assert database.get_values(["/app", "/exact", "/missing"]) == {
        "/app": "top", "/app/name": "inside", "/app/secret": SECRET_VALUE, "/app/list": "a,b,c",
        "/exact": "only",
    }  # fmt: skip
    assert database.get_values(["/app/name"]) == {"/app/name": "inside"}


def test_ssm_reads_every_page_and_every_batch(aws: MotoServer) -> None:
    client = aws.client("ssm")
    for i in range(25):  # GetParametersByPath answers ten per page
        client.put_parameter(Name=f"/many/k{i:02d}", Value=str(i), Type="String")
    database = open_backend("ssm")
    assert len(database.get_values(["/many"])) == 25
    exact = [f"/many/k{i:02d}" for i in range(25)] + ["/nothing"]  # GetParameters: ten a call
    assert database.get_values(exact) == {f"/many/k{i:02d}": str(i) for i in range(25)}


def test_ssm_key_parameter_store_cannot_hold_is_absent(aws: MotoServer) -> None:
    aws.client("ssm").put_parameter(Name="/app/name", Value="inside", Type="String")
    database = open_backend("ssm")
    assert database.get_values(["/has space", "/app", "/bad|name"]) == {"/app/name": "inside"}


# --- secretsmanager (the fork's examples) -------------------------------------------------------


@pytest.fixture
def secrets(aws: MotoServer) -> MotoServer:
    client = aws.client("secretsmanager")
    client.create_secret(Name="myapp/api-key", SecretString="sk-1234567890")
    client.create_secret(
        Name="myapp/database",
        SecretString='{"url":"db.example.com","user":"admin","password":"secret123"}',
    )
    client.create_secret(Name="myapp/cert", SecretBinary=b"binary-secret-data")
    client.create_secret(
        Name="typed",
        SecretString='{"port":5432,"big":1000000,"ssl":true,"none":null,"nested":{"a":[1,2]}}',
    )
    return aws


def test_secretsmanager_flattens_json_and_reads_plain_and_binary(secrets: MotoServer) -> None:
    database = open_backend("secretsmanager")
    assert database.get_values(["/myapp/database", "/myapp/api-key", "/myapp/cert"]) == {
        "/myapp/database/url": "db.example.com",
        "/myapp/database/user": "admin",
        "/myapp/database/password": "secret123",
        "/myapp/api-key": "sk-1234567890",
        "/myapp/cert": base64.b64encode(b"binary-secret-data").decode(),
    }


def test_secretsmanager_reads_a_field_of_a_json_secret_above_the_key(
    secrets: MotoServer,
) -> None:
    database = open_backend("secretsmanager")
    assert database.get_values(["/myapp/database/user", "/myapp/database/nope", "/nope"]) == {
        "/myapp/database/user": "admin"
    }


def test_secretsmanager_prints_json_fields_as_confd_prints_values(secrets: MotoServer) -> None:
    assert open_backend("secretsmanager").get_values(["/typed"]) == {
        "/typed/port": "5432", "/typed/big": "1000000", "/typed/ssl": "true", "/typed/none": "",
        "/typed/nested": '{"a":[1,2]}',
    }  # fmt: skip


def test_secretsmanager_no_flatten_keeps_the_json_text(secrets: MotoServer) -> None:
    database = open_backend("secretsmanager", secretsmanager_no_flatten="true")
    values = database.get_values(["/myapp/database", "/myapp/database/user"])
    assert values == {
        "/myapp/database": '{"url":"db.example.com","user":"admin","password":"secret123"}'
    }


def test_secretsmanager_reads_the_version_stage_asked_for(secrets: MotoServer) -> None:
    secrets.client("secretsmanager").put_secret_value(
        SecretId="myapp/api-key", SecretString="sk-rotated"
    )
    assert open_backend("secretsmanager").get_values(["/myapp/api-key"]) == {
        "/myapp/api-key": "sk-rotated"
    }
    previous = open_backend("secretsmanager", secretsmanager_version_stage="AWSPREVIOUS")
    assert previous.get_values(["/myapp/api-key"]) == {"/myapp/api-key": "sk-1234567890"}


# --- acm ----------------------------------------------------------------------------------------


def _certificate(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_cert, signer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    return cert, key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def import_certificate(
    server: MotoServer, name: str, arn: str | None = None
) -> tuple[str, str, str]:
    """Import a leaf certificate signed by a fresh CA: (ARN, certificate PEM, chain PEM as ACM
    gives it back: the imported chain, then Amazon's root CA)."""
    ca = _certificate("Test CA", None)
    cert, key = _certificate(name, ca)
    params = {
        "Certificate": _pem(cert).encode(),
        "PrivateKey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "CertificateChain": _pem(ca[0]).encode(),
    }  # fmt: skip
    if arn:
        params["CertificateArn"] = arn
    reply = server.client("acm").import_certificate(**params)
    chain = server.client("acm").get_certificate(CertificateArn=reply["CertificateArn"])
    assert chain["CertificateChain"].startswith(_pem(ca[0]))
    return reply["CertificateArn"], _pem(cert), chain["CertificateChain"]


def test_acm_reads_the_certificate_and_its_chain_by_arn(aws: MotoServer) -> None:
    arn, cert, chain = import_certificate(aws, "app.example.com")
    key = "/" + arn
    values = open_backend("acm").get_values([key, f"/{CERT_ARN}"])
    assert values == {key: cert, f"{key}_chain": chain}
    assert open_backend("acm").get_values([f"{key}_chain"]) == values  # a suffix reads its cert


def test_acm_exports_the_private_key_encrypted_with_acm_passphrase(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only exportable certificates (here: one from a private CA) give a private key.
    arn = aws.client("acm").request_certificate(
        DomainName="internal.example.com",
        CertificateAuthorityArn=f"arn:aws:acm-pca:us-east-1:{ACCOUNT}:certificate-authority/x",
    )["CertificateArn"]
    monkeypatch.setenv("ACM_PASSPHRASE", "correct horse battery")
    values = open_backend("acm", acm_export_private_key="true").get_values(["/" + arn])
    encrypted = values[f"/{arn}_private_key"]
    assert encrypted.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = serialization.load_pem_private_key(encrypted.encode(), b"correct horse battery")
    cert = x509.load_pem_x509_certificate(values["/" + arn].encode())
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_acm_key_that_is_not_an_arn_is_an_error_naming_it(aws: MotoServer) -> None:
    with pytest.raises(DatabaseError, match="backend 'acm': key '/app/cert' is not a certificate"):
        open_backend("acm").get_values(["/app/cert"])


def test_watch_polls_acm_and_renders_a_reimported_certificate(
    aws: MotoServer, tmp_path: Path
) -> None:
    arn, cert, chain = import_certificate(aws, "v1.example.com")
    template = f'{{{{ getv("/{arn}") }}}}{{{{ getv("/{arn}_chain") }}}}'
    confdir = make_confdir(tmp_path, ["/" + arn], template)
    log = tmp_path / "confd.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(CONFD), "--watch", "--interval", "1", "--confdir", str(confdir),
             "--backend", "acm"],
            env={**clean_environ(), **aws.env()}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        out_file = tmp_path / "out.conf"
        wait_for(lambda: read(out_file) == cert + chain, "first render", log.read_text)
        _, renewed, new_chain = import_certificate(aws, "v2.example.com", arn=arn)
        wait_for(lambda: read(out_file) == renewed + new_chain, "renewed cert", log.read_text)
    finally:
        terminate(process)


# --- failures, for every AWS backend -------------------------------------------------------------

KEYS = {"dynamodb": "/app/name", "ssm": "/app/name", "secretsmanager": "/app/password",
        "acm": f"/{CERT_ARN}"}  # fmt: skip
ARGS = {"dynamodb": ["--backend-opt", "table=confd"]}


def failing_run(tmp_path: Path, backend: str, env: dict[str, str], *extra: str
                ) -> subprocess.CompletedProcess[str]:
    confdir = make_confdir(tmp_path, [KEYS[backend]], f'{{{{ getv("{KEYS[backend]}") }}}}\n')
    return run_confd(
        confdir, "--backend", backend, *ARGS.get(backend, []), *extra, env=env, timeout=60
    )


def one_error(done: subprocess.CompletedProcess[str], backend: str) -> str:
    """The one error line naming `backend`; the run must have failed with it."""
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if f"backend '{backend}'" in line]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("backend", AWS)
def test_unreachable_endpoint_is_one_error_naming_it(backend: str, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = aws_environment(closed, MotoServer.access_key, MotoServer.secret_key, "us-east-1")
    started = time.monotonic()
    error = one_error(failing_run(tmp_path, backend, env), backend)
    assert f"cannot reach {closed}" in error
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("backend", AWS)
def test_missing_credentials_is_one_error_saying_so(
    backend: str, aws: MotoServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in aws.env().items() if not k.startswith("AWS_ACCESS_KEY")}
    env.pop("AWS_SECRET_ACCESS_KEY")
    assert "no AWS credentials found" in one_error(failing_run(tmp_path, backend, env), backend)


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[MotoServer, dict[str, tuple[str, str]]]]:
    """A moto server checking signatures and IAM policies, holding data for every backend,
    with users `reader` (may read everything) and `denied` (may read nothing)."""
    with MotoServer() as server:
        create_table(server)
        put_items(server, {"/app/name": {"S": SECRET_VALUE}})
        server.client("ssm").put_parameter(Name="/app/name", Value=SECRET_VALUE, Type="String")
        server.client("secretsmanager").create_secret(
            Name="app", SecretString=json.dumps({"password": SECRET_VALUE})
        )
        iam = server.client("iam")
        users: dict[str, tuple[str, str]] = {}
        for user, effect in (("reader", "Allow"), ("denied", "Deny")):
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user, PolicyName="all", PolicyDocument=json.dumps({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": effect, "Action": "*", "Resource": "*"}],
                }),
            )  # fmt: skip
            key = iam.create_access_key(UserName=user)["AccessKey"]
            users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        server.require_auth()
        yield server, users


@pytest.mark.parametrize("backend", AWS)
def test_refused_credentials_are_one_error_without_the_secret_key(
    backend: str, guarded: tuple[MotoServer, dict], tmp_path: Path
) -> None:
    server, users = guarded
    access_key, _ = users["reader"]
    wrong_secret = "wrong-secret-key-must-never-be-shown"
    for env in (server.env("AKIANOSUCHUSER000000", wrong_secret),  # unknown key
                server.env(access_key, wrong_secret)):  # known key, bad signature
        done = failing_run(tmp_path / env["AWS_ACCESS_KEY_ID"], backend, env)
        assert "AWS did not accept the credentials" in one_error(done, backend)
        assert wrong_secret not in done.stdout + done.stderr


@pytest.mark.parametrize("backend", AWS)
def test_access_denied_is_one_error_naming_the_backend(
    backend: str, guarded: tuple[MotoServer, dict], tmp_path: Path
) -> None:
    server, users = guarded
    error = one_error(failing_run(tmp_path, backend, server.env(*users["denied"])), backend)
    assert "access denied: User: arn:aws:iam::123456789012:user/denied" in error
    if backend == "acm":
        return  # the guarded server holds no certificate for a permitted read
    reader = failing_run(tmp_path / "reader", backend, server.env(*users["reader"]))
    assert reader.returncode == 0, reader.stderr  # the same request with a permitted user
    assert read(tmp_path / "reader" / "out.conf") == SECRET_VALUE + "\n"


@pytest.mark.parametrize("isolate", [[], ["--isolate"]], ids=["in-process", "isolated"])
@pytest.mark.parametrize("backend", ["dynamodb", "ssm", "secretsmanager"])
def test_no_secret_in_a_debug_log(
    backend: str, isolate: list[str], guarded: tuple[MotoServer, dict], tmp_path: Path
) -> None:
    # Debug level in confd, and in the plugin (whose root logger is at debug): botocore would
    # log every answer whole, the secret value with it, and the request signature.
    server, users = guarded
    access_key, secret_key = users["reader"]
    done = failing_run(
        tmp_path, backend, server.env(access_key, secret_key), "--log-level", "debug", *isolate
    )
    assert done.returncode == 0, done.stderr
    assert read(tmp_path / "out.conf") == SECRET_VALUE + "\n"
    output = done.stdout + done.stderr
    assert "DEBUG" in output  # the log really was at debug level
    assert SECRET_VALUE not in output
    assert secret_key not in output


# --- where the endpoint comes from ---------------------------------------------------------------

SERVICE_VARIABLE = {"dynamodb": "AWS_ENDPOINT_URL_DYNAMODB", "ssm": "AWS_ENDPOINT_URL_SSM",
                    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                    "acm": "AWS_ENDPOINT_URL_ACM"}  # fmt: skip
LEGACY = {"dynamodb": ("DYNAMODB_LOCAL", "DYNAMODB_ENDPOINT_URL"),
          "ssm": ("SSM_LOCAL", "SSM_ENDPOINT_URL"),
          "secretsmanager": ("SECRETSMANAGER_LOCAL", "SECRETSMANAGER_ENDPOINT_URL"),
          "acm": ("ACM_LOCAL", "ACM_ENDPOINT_URL")}  # fmt: skip


@pytest.mark.parametrize("source", ["setting", "legacy", "service-variable"])
@pytest.mark.parametrize("backend", AWS)
def test_endpoint_setting_then_go_confds_variables_then_botocores(
    backend: str, source: str, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS_ENDPOINT_URL names a closed port: the read reaches moto only through `source`.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    settings = {"table": "confd"} if backend == "dynamodb" else {}
    if source == "setting":
        settings["endpoint"] = aws.url
        monkeypatch.setenv(SERVICE_VARIABLE[backend], "http://127.0.0.1:9")  # loses
    elif source == "legacy":
        switch, url = LEGACY[backend]
        monkeypatch.setenv(switch, "1")
        monkeypatch.setenv(url, aws.url)
        monkeypatch.setenv(SERVICE_VARIABLE[backend], "http://127.0.0.1:9")  # loses
    else:
        monkeypatch.setenv(SERVICE_VARIABLE[backend], aws.url)
    if backend == "dynamodb":
        create_table(aws)
    database = open_backend(backend, **settings)
    assert database.get_values([KEYS[backend]]) == {}  # answered by moto: nothing there
