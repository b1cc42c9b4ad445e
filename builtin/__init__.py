"""Built-in databases, one module each, all behind `plugin_sdk.database.Database`.

Modules here import nothing of the daemon (`confd`), only `plugin_sdk.database`.
"""
