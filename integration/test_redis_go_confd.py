"""Redis as Go confd's redis backend behaved, against a real Redis: every `/*` in a key is
dropped, and `-client-key` is the password (deprecated, with a hint; `password` wins)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from builtin.redis import RedisDatabase
from integration.servers import RedisServer


def test_every_wildcard_in_a_key_is_dropped_as_go_confd_redis_does(
    redis_server: RedisServer,  # the session's (integration/conftest.py)
) -> None:
    """Go confd's redis backend reads `/app/*/db` as `/app/db` (it strips every `/*`), so a
    resource written for it reads the same keys here, not a literal `*` key."""
    with redis.Redis(port=redis_server.port, decode_responses=True) as client:
        client.flushdb()
        client.mset({"/app/db/host": "h1", "/app/*/db/host": "literal"})
    database = RedisDatabase()
    database.configure({"nodes": f"127.0.0.1:{redis_server.port}"})
    try:
        assert database.get_values(["/app/*/db"]) == {"/app/db/host": "h1"}
    finally:
        database.close()


PASSWORD = "pw-REDIS-4e1b"


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[RedisServer]:
    with RedisServer(extra=["--requirepass", PASSWORD]) as server:
        with redis.Redis(port=server.port, password=PASSWORD) as client:
            client.set("/app/name", "locked")
        yield server


@pytest.mark.parametrize(
    ("flags", "status", "hint"),
    [
        (["--client-key", PASSWORD], 0, "deprecated, give it as --password"),
        (["--password", PASSWORD, "--client-key", "wrong"], 0, "'client_key' is ignored"),
        (["--password", "wrong", "--client-key", PASSWORD], 1, "'client_key' is ignored"),
    ],
)
def test_go_confds_client_key_is_the_password_unless_password_is_set(
    tmp_path, make_confdir, run_confd, redis_with_password: RedisServer,
    flags: list[str], status: int, hint: str,
) -> None:
    dest = tmp_path / "app.conf"
    confdir = make_confdir(
        {"app.tmpl": '{{ getv("/app/name") }}\n'},
        {"app.toml": f'[template]\nsrc = "app.tmpl"\ndest = "{dest}"\nkeys = ["/app"]\n'},
    )
    done = run_confd(
        "--onetime", "--backend", "redis", "--node", f"127.0.0.1:{redis_with_password.port}",
        "--confdir", str(confdir), *flags,
    )
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert output.count(hint) == 1, output
    assert PASSWORD not in output
    if status == 0:
        assert dest.read_text() == "locked\n"
    else:
        assert "authentication failed" in output and not dest.exists()
