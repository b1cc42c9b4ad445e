"""A Redis password and the values read with it never reach the log, whichever way the
password is given (flag, environment, backend option) and in either log format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from integration.servers import RedisServer

SECRET_VALUE = "s3cr3t-VALUE-7f2c"
PASSWORD = "hunter2-PASSWORD-91ab"
TOKEN = "tok-TOKEN-55e0d1"


def assert_no_secret(output: str) -> None:
    for secret in (SECRET_VALUE, PASSWORD, TOKEN):
        assert secret not in output, f"{secret!r} leaked into confd's output:\n{output}"


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[RedisServer]:
    server = RedisServer(extra=["--requirepass", PASSWORD])
    try:
        server.start()
        client = redis.Redis(port=server.port, password=PASSWORD, socket_timeout=10)
        client.set("/app/secret", SECRET_VALUE)
        client.set("/app/token", TOKEN)
        client.close()
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(
    ("how", "password", "status"),
    [
        ("flag", PASSWORD, 0),
        ("env", PASSWORD, 0),
        ("backend-opt", PASSWORD, 0),
        ("flag", PASSWORD + "-wrong", 1),
    ],
)
def test_password_and_values_never_reach_the_log(
    tmp_path: Path, make_confdir, run_confd, redis_with_password: RedisServer, log_format: str,
    how: str, password: str, status: int,
) -> None:
    dest = tmp_path / "app.conf"
    confdir = make_confdir(
        templates={"app.tmpl": '{{ getv("/app/secret") }} {{ getv("/app/token") }}\n'},
        resources={"app.toml": f'[template]\nsrc = "app.tmpl"\ndest = "{dest}"\nkeys = ["/app"]\n'},
    )
    args = ["--onetime", "--log-level", "debug", "--log-format", log_format, "--backend", "redis",
            "--node", f"127.0.0.1:{redis_with_password.port}", "--confdir", str(confdir)]
    env = {}
    if how == "flag":
        args += ["--password", password]
    elif how == "env":
        env["CONFD_PASSWORD"] = password
    else:
        args += ["--backend-opt", f"password={password}"]
    result = run_confd(*args, env=env)
    assert result.returncode == status, result.stderr
    if status == 0:
        assert dest.read_text() == f"{SECRET_VALUE} {TOKEN}\n"
    else:
        assert "redis" in result.stderr and "Traceback" not in result.stderr
        assert not dest.exists()
    output = result.stdout + result.stderr
    assert_no_secret(output)
    assert password not in output
