"""The errors confd reports. Each message names the file, line, key or plugin at fault."""

from __future__ import annotations


class ConfdError(Exception):
    """Base of every error confd reports to the user (shown without a traceback)."""


class ConfigError(ConfdError):
    """Bad settings, a bad confd.toml, or a bad template resource file."""


class TemplateError(ConfdError):
    """A template failed to load or render (syntax error, missing key, ...)."""


class OutputFormatError(TemplateError):
    """Rendered output is not valid in the resource's `output_format` (json, yaml, toml, xml)."""


class BackendError(ConfdError):
    """A database backend failed (settings, connection, request)."""


class PluginError(BackendError):
    """A database plugin failed to start, hand-shake, or answer."""


class SyncError(ConfdError):
    """Writing a destination, or its check or reload command, failed."""
