"""The `env` database: keys read from the process environment, confd's way.

A key maps to a variable name by dropping the leading `/`, turning `/` into `_`
and upper-casing (`/db/host` -> `DB_HOST`); a variable maps back by lower-casing
and turning `_` into `/` (`DB_HOST` -> `/db/host`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import ClassVar

from plugin_sdk.database import Database, Setting

__all__ = ["EnvDatabase", "key_to_variable", "variable_to_key"]


def key_to_variable(key: str) -> str:
    """The environment variable name confd reads for `key` (`/db/host` -> `DB_HOST`)."""
    return key.strip("/").replace("/", "_").upper()


def variable_to_key(name: str) -> str:
    """The key confd reports for variable `name` (`DB_HOST` -> `/db/host`)."""
    return "/" + name.lower().replace("_", "/")


class EnvDatabase(Database):
    """Reads `os.environ` at every `get_values`, so interval polls see new values.

    A requested key returns each variable equal to it or below it: `/app` gives
    `APP` and `APP_PORT`, never `APPLICATION`. Matches are reported under confd's
    mapped-back key (`/app/port`); when the requested key holds an `_` (`/my_app`),
    they are also reported under the key as spelled (`/my_app/port`), which confd's
    lossy mapping (`/my/app/port`) alone would make unreachable.
    """

    name: ClassVar[str] = "env"
    description: ClassVar[str] = "environment variables: /db/host is read from DB_HOST"
    settings: ClassVar[tuple[Setting, ...]] = ()
    can_watch: ClassVar[bool] = False

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        # one copy: os.environ decodes a name and its value at every look, key after key
        environ = dict(os.environ if self._environ is None else self._environ)
        values: dict[str, str] = {}
        for key in keys:
            requested = "/" + key.strip("/")
            wanted = key_to_variable(key)
            below = wanted + "_"
            for name, value in environ.items():
                if wanted and name != wanted and not name.startswith(below):
                    continue
                values[variable_to_key(name)] = value
                if wanted:
                    spelled = requested + name[len(wanted) :].lower().replace("_", "/")
                    values[spelled] = value
        return values
