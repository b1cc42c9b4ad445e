"""What a database says about itself: name, description, settings, whether it can watch.

The same record serves a built-in (read from its class) and a plugin (its `Describe` answer),
so `confd backends` shows both alike and the host checks a plugin's settings before
`Configure`. Types and defaults are words as a user writes them in `--backend-opt`, because a
plugin in another language may have types Python lacks (`duration`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from plugin_sdk.database import Database, Setting
    from plugin_sdk.proto.confd_plugin import database_pb2

__all__ = ["Description", "SettingDescription", "check_settings", "describe", "format_default"]


class SettingDescription(NamedTuple):
    """One accepted setting; `default` is None when the setting has none."""

    name: str
    type: str = "str"
    default: str | None = None
    help: str = ""
    secret: bool = False
    required: bool = False


class Description(NamedTuple):
    """A database's self-description (a built-in's class, or a plugin's `Describe`)."""

    name: str
    description: str = ""
    settings: tuple[SettingDescription, ...] = ()
    can_watch: bool = False

    @property
    def setting_names(self) -> list[str]:
        return sorted(s.name for s in self.settings)


def format_default(value: Any) -> str:
    """A default as a user would write it: `true`, `a,b`, `5`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _setting(setting: Setting) -> SettingDescription:
    # A secret's default is never described: it would be shown, cached, or logged.
    hidden = setting.secret or setting.default is None
    default = None if hidden else format_default(setting.default)
    return SettingDescription(
        setting.name, setting.type.__name__, default, setting.help, setting.secret,
        setting.required,
    )


def describe(database: Database | type[Database]) -> Description:
    """The description of a `Database` class (or instance), from its class attributes."""
    return Description(
        database.name,
        database.description,
        tuple(_setting(s) for s in database.settings),
        bool(database.can_watch),
    )


def to_message(description: Description) -> database_pb2.DescribeResponse:
    """The `Describe` answer for `description`."""
    from plugin_sdk.proto.confd_plugin import database_pb2

    reply = database_pb2.DescribeResponse(
        name=description.name, description=description.description,
        can_watch=description.can_watch,
    )
    for setting in description.settings:
        item = reply.settings.add(
            name=setting.name, type=setting.type, help=setting.help, secret=setting.secret,
            required=setting.required,
        )
        if setting.default is not None:
            item.default = setting.default
    return reply


def from_message(reply: database_pb2.DescribeResponse) -> Description:
    """A plugin's `Describe` answer as a `Description`."""
    return Description(
        reply.name,
        reply.description,
        tuple(
            SettingDescription(
                s.name, s.type or "str", s.default if s.HasField("default") else None,
                s.help, s.secret, s.required,
            )
            for s in reply.settings
        ),
        reply.can_watch,
    )


def check_settings(
    backend: str, description: Description, config: Mapping[str, str]
) -> list[str]:
    """Problems with `config` against `description`: unknown names (with the accepted list)
    and missing required settings, each naming the backend and setting, never a value."""
    known = {s.name for s in description.settings}
    problems: list[str] = []
    unknown: Sequence[str] = sorted(set(config) - known)
    if unknown:
        names = ", ".join(map(repr, unknown))
        accepted = ", ".join(description.setting_names) or "none"
        noun = "setting" if len(unknown) == 1 else "settings"
        problems.append(f"backend {backend!r} has no {noun} {names} (its settings: {accepted})")
    for setting in description.settings:
        if setting.required and setting.name not in config:
            problems.append(f"backend {backend!r}: setting {setting.name!r} is required")
    return problems
