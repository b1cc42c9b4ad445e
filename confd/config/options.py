"""The one table of daemon settings: every flag, `CONFD_*` variable and confd.toml key in one place.

Each `Option` says its name, type, default and help, how the environment and confd.toml may
spell it, whether it reaches backends as a common setting (`--node`, `--username`, ...) and
whether SIGHUP can apply it to a running daemon. The click options (`confd.cli.main`), the
environment mapping, the TOML keys and the coercion (`confd.config.settings`) are generated from
it, the way `plugin_sdk.Setting` describes a backend's settings. The maintained fork's
(abtreece/confd) timeout, retry and diff settings are here under its names and defaults.
"""

import os
from typing import Any, NamedTuple

__all__ = ["OPTIONS", "BY_NAME", "BACKEND_OPTIONS", "FOLDED_OPTIONS", "Duration", "Option",
           "LOG_LEVELS", "format_duration"]

# Go confd's levels (logrus) and ours; fatal and panic log as error.
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "panic")


class Duration(float):
    """The type of a setting in seconds that may also be written as a Go duration (`500ms`)."""


def format_duration(seconds: float) -> str:
    """Seconds as the fork's docs write them: `100ms`, `2s`, `1.5s`, `0`."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


class Option(NamedTuple):
    """One daemon setting and every way a user can give it."""

    name: str
    type: type  # str, bool, int, float, Duration or list
    default: Any
    help: str
    flag: str = ""  # the long flag when it is not --name-with-dashes (e.g. --node for nodes)
    short: str = ""  # a one-letter flag too (the fork's -n for --node)
    env: tuple[str, ...] = ()  # variables read besides CONFD_<NAME>
    toml: tuple[str, ...] = ()  # confd.toml spellings besides the name (dashes or underscores)
    choices: tuple[str, ...] = ()
    backend: bool = False  # a common backend setting, passed on under the same name
    secret: bool = False  # never shown or logged
    restart: bool = False  # SIGHUP cannot change it on a running daemon
    file: bool = True  # may be set in confd.toml
    metavar: str = ""
    separator: str = ","  # between list items in an environment variable
    zero: bool = False  # a number (int, Duration) may be 0
    fold: str = ""  # passed under its own name to a backend that declares it, else folded
    #                 (the largest of those set) into the backend setting named here

    @property
    def long_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def env_names(self) -> tuple[str, ...]:
        return ("CONFD_" + self.name.upper(), *self.env)

    @property
    def toml_names(self) -> tuple[str, ...]:
        return (self.name, *self.toml) if self.file else ()

    def shown_default(self) -> str:
        """The default as `--help` shows it ('' when there is nothing worth showing)."""
        if self.secret or self.default in (None, "", [], False):
            return ""
        if self.type is Duration:
            return format_duration(self.default)
        if self.default is True:
            return "true"
        return str(self.default)


_S, _B, _I, _F, _L, _D = str, bool, int, float, list, Duration

OPTIONS: tuple[Option, ...] = (
    # -- what to run --------------------------------------------------------------------------
    Option("backend", _S, "etcd", "backend to use: env, file, etcd (etcdv3), consul, redis, "
           "zookeeper, vault, dynamodb, ssm, secretsmanager, acm, imds or a plugin name"),
    Option("confdir", _S, "/etc/confd", "confd configuration directory"),
    Option("config_file", _S, "", "the confd config file [default: <confdir>/confd.toml]",
           file=False),
    Option("onetime", _B, False, "run once and exit", restart=True),
    Option("watch", _B, False, "watch the backend for changes instead of polling every interval"),
    Option("interval", _I, 600, "backend polling interval in seconds"),
    Option("wait", _S, "", "debounce: render MIN after the last change, at most MAX after the "
           "first (e.g. 500ms:5s)", metavar="MIN:MAX"),
    Option("failure_mode", _S, "best-effort", "on a render or backend error in watch/interval "
           "mode: keep going, or exit 1", choices=("best-effort", "fail-fast")),
    Option("metrics_addr", _S, "", "serve /metrics, /health and /ready there",
           metavar="HOST:PORT", restart=True),
    Option("cache_dir", _S, "", "directory where compiled templates and parsed resource files "
           "are kept across runs [default: $CACHE_DIRECTORY (systemd), $XDG_CACHE_HOME/confd or "
           "~/.cache/confd]; 'off' keeps them in memory only", metavar="DIR"),
    Option("template_syntax", _S, "auto", "template language: auto (decided per template), go "
           "(Go text/template, as Go confd) or jinja", choices=("auto", "go", "jinja")),
    # -- what a render does -------------------------------------------------------------------
    Option("noop", _B, False, "only show pending changes (as a diff)"),
    Option("diff", _B, True, "in noop mode, show each pending change as a unified diff (the "
           "fork's --diff; --no-diff: log only)"),
    Option("diff_context", _I, 3, "lines of context around each change in noop diffs",
           metavar="N", zero=True),
    Option("color", _B, None, "color noop diffs (default: when stdout is a terminal)"),
    Option("sync_only", _B, False, "sync without check_cmd and reload_cmd"),
    Option("keep_stage_file", _B, False, "keep staged files"),
    Option("prefix", _S, "", "key path prefix; replaces each resource's prefix, as in Go confd"),
    Option("check_cmd_timeout", _D, 30.0, "check_cmd timeout of resources that set none "
           "(0: none)", metavar="DURATION", zero=True),
    Option("reload_cmd_timeout", _D, 60.0, "reload_cmd timeout of resources that set none "
           "(0: none)", metavar="DURATION", zero=True),
    # -- timeouts and retries (the fork's names and defaults) ----------------------------------
    Option("backend_timeout", _D, 30.0, "timeout of a backend request", metavar="DURATION",
           fold="timeout"),
    Option("dial_timeout", _D, 5.0, "timeout of connecting to a backend", metavar="DURATION",
           fold="timeout"),
    Option("read_timeout", _D, 1.0, "timeout of reading a backend's answer",
           metavar="DURATION", fold="timeout"),
    Option("write_timeout", _D, 1.0, "timeout of sending a request to a backend",
           metavar="DURATION", fold="timeout"),
    Option("retry_max_attempts", _I, 3, "retries of a failed backend read before a render "
           "fails (0: none)", metavar="N", zero=True),
    Option("retry_base_delay", _D, 0.1, "delay before the first retry; doubles per retry, "
           "jittered", metavar="DURATION"),
    Option("retry_max_delay", _D, 5.0, "longest delay between retries", metavar="DURATION"),
    Option("watch_error_backoff", _D, 2.0, "first wait before a failed watch reconnects; "
           "doubles (jittered) up to 30s while it keeps failing", metavar="DURATION"),
    Option("shutdown_timeout", _D, 30.0, "on SIGTERM/SIGINT, how long to let a render in "
           "flight finish before exiting", metavar="DURATION"),
    Option("preflight_timeout", _D, 10.0, "time limit of confd preflight (--preflight)",
           metavar="DURATION"),
    # -- logging ------------------------------------------------------------------------------
    Option("log_level", _S, "info", "level of the messages confd logs", choices=LOG_LEVELS,
           toml=("log-level",)),
    Option("log_format", _S, "text", "log line format", choices=("text", "json")),
    # -- common backend settings --------------------------------------------------------------
    Option("nodes", _L, [], "backend node address (repeatable)", flag="--node", short="-n",
           env=("CONFD_NODE",), toml=("node",), backend=True),
    Option("scheme", _S, "http", "URI scheme for nodes given without one, and for nodes from "
           "DNS SRV records (http or https)", backend=True),
    Option("srv_domain", _S, "", "discover backend nodes from the SRV record "
           "_<backend>._tcp.<domain>"),
    Option("srv_record", _S, "", "discover backend nodes from this SRV record (e.g. "
           "_etcd-client._tcp.example.com)"),
    Option("srv_nameservers", _L, [], "DNS servers (HOST or HOST:PORT) asked for SRV records "
           "[default: the system's, from /etc/resolv.conf]", flag="--srv-nameserver",
           toml=("srv_nameserver",), metavar="HOST[:PORT]"),
    Option("client_cert", _S, "", "the client certificate file", backend=True),
    Option("client_key", _S, "", "the client key file", backend=True),
    Option("client_ca_keys", _S, "", "the client CA certificate file", backend=True,
           env=("CONFD_CLIENT_CAKEYS",), toml=("client_cakeys",)),
    Option("client_insecure", _B, False, "skip TLS verification of the backend (insecure)",
           backend=True),
    Option("basic_auth", _B, False, "authenticate with the username and password (Go confd: "
           "consul, etcd); on whenever a username is given", backend=True),
    Option("username", _S, "", "the username to authenticate as", backend=True),
    Option("password", _S, "", "the password to authenticate with", backend=True, secret=True),
    Option("auth_token", _S, "", "auth bearer token (vault: the token)", backend=True,
           secret=True),
    Option("auth_type", _S, "", "vault auth method: token, approle, app-id, kubernetes, "
           "userpass, github or cert", backend=True),
    Option("app_id", _S, "", "vault app-id (auth-type app-id)", backend=True),
    Option("user_id", _S, "", "vault user-id (auth-type app-id)", backend=True, secret=True),
    Option("role_id", _S, "", "vault role-id (auth-types approle, kubernetes)", backend=True),
    Option("secret_id", _S, "", "vault secret-id (auth-type approle)", backend=True,
           secret=True),
    Option("path", _S, "", "vault mount path of the auth method", backend=True),
    Option("table", _S, "", "the DynamoDB table", backend=True),
    Option("secretsmanager_version_stage", _S, "", "the secret version stage to read "
           "(secretsmanager backend) [default: AWSCURRENT]", backend=True),
    Option("secretsmanager_no_flatten", _B, False, "keep a JSON secret whole instead of one key "
           "per field (secretsmanager backend)", backend=True),
    Option("acm_export_private_key", _B, False, "also read each certificate's private key, "
           "encrypted with $ACM_PASSPHRASE (acm backend)", backend=True),
    Option("imds_cache_ttl", _S, "", "reuse instance metadata answers this long, e.g. 2m "
           "(imds backend) [default: 60s]", backend=True),
    Option("file", _L, [], "the YAML/JSON file to read (file backend, repeatable)", backend=True,
           toml=("files",)),
    Option("filter", _S, "*", "file name filter in --file directories (file backend)",
           backend=True),
    Option("separator", _S, "", "the separator replacing '/' in keys (redis backend)",
           backend=True),
    # -- plugins ------------------------------------------------------------------------------
    Option("plugin_dirs", _L, [], "a directory searched for confd-database-NAME plugins "
           "(repeatable)", flag="--plugin-dir", env=("CONFD_PLUGIN_DIR",), toml=("plugin_dir",),
           separator=os.pathsep),
    Option("isolate", _B, False, "run a built-in backend out of process, as a plugin"),
    Option("plugin_start_timeout", _F, 10.0, "seconds a plugin may take to print its handshake",
           metavar="SECONDS"),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
BACKEND_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.backend)
FOLDED_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.fold)
