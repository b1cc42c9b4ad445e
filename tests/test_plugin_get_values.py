"""GetValues across the plugin protocol: the host asks for parallel lists (cheaper than a map
to encode and decode), and hosts and plugins from before that field keep working together."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from confd.backends.plugin.client import PluginDatabase
from confd.backends.plugin.launch import LaunchOptions
from plugin_sdk import Database
from plugin_sdk.proto.confd_plugin import database_pb2
from plugin_sdk.service import DatabaseService

REPO = Path(__file__).resolve().parent.parent
VALUES = {f"/app/k{i:04d}": f"value-{i}" for i in range(2_000)} | {
    "/app/empty": "",
    "/app/unicode": "grüße ✓",
    "/app/lines": "a\nb\n",
}

# A plugin built before `lists` existed: it ignores the field and always fills the map.
PLUGIN = """#!{python}
import sys
sys.path.insert(0, {repo!r})
from plugin_sdk import Database, serve
from plugin_sdk.proto.confd_plugin import database_pb2
from plugin_sdk.service import DatabaseService

VALUES = {values!r}

class Static(Database):
    name = "static"
    def configure(self, config):
        pass
    def get_values(self, keys):
        return {{k: v for k, v in VALUES.items() if any(k.startswith(p) for p in keys)}}

if {old!r}:
    def map_only(self, request, context):
        reply = database_pb2.GetValuesResponse()
        reply.values.update(self._database.get_values(list(request.keys)))
        return reply
    DatabaseService.GetValues = map_only

serve(Static())
"""


@pytest.fixture(params=["current plugin", "plugin from before lists"])
def plugin(request, tmp_path: Path):
    exe = tmp_path / "confd-database-static"
    exe.write_text(PLUGIN.format(python=sys.executable, repo=str(REPO), values=VALUES,
                                 old=request.param != "current plugin"))
    exe.chmod(0o755)
    database = PluginDatabase(LaunchOptions("static", [str(exe)]))
    try:
        database.configure({})
        yield database
    finally:
        database.close()


def test_host_gets_every_value_from_either_plugin(plugin: PluginDatabase) -> None:
    assert plugin.get_values(["/app"]) == VALUES


def test_host_gets_nothing_for_a_missing_prefix(plugin: PluginDatabase) -> None:
    assert plugin.get_values(["/nothing"]) == {}


class _Two(Database):
    name = "two"

    def get_values(self, keys):
        return {"/app/a": "1", "/app/b": ""}


@pytest.mark.parametrize("lists", [True, False], ids=["host asks for lists", "older host"])
def test_plugin_answers_in_the_form_the_host_reads(lists: bool) -> None:
    reply = DatabaseService(_Two()).GetValues(
        database_pb2.GetValuesRequest(keys=["/app"], lists=lists), None
    )
    if lists:
        assert dict(zip(reply.list_keys, reply.list_values, strict=True)) == {
            "/app/a": "1", "/app/b": ""}
        assert dict(reply.values) == {}
    else:
        assert dict(reply.values) == {"/app/a": "1", "/app/b": ""}
        assert list(reply.list_keys) == []
