"""Go confd command lines, run unchanged against real servers and the doubles (issue #12).

Each row of `LINES` is a command line from Go confd's docs or integration tests
(kelseyhightower/confd `docs/*.md`, `integration/*/test.sh`), or one per Go confd flag, run in
one confd process over `integration/go_confdir` (Go templates and expected outputs of the same
kind as Go confd's own `integration/confdir`), with the same data (`go_confdir/data.json`) loaded
into every store. Only what cannot stay as written changes: `{name}` stands for the address of
our server (free ports on 127.0.0.1), and doc lines that assume /etc/confd get `-confdir`.

`test_ours` checks our exit status, the rendered files and what we log. `test_same_as_go_confd`
runs the same line through Go confd (`/work/shared/peer/confd-go`, or `$CONFD_GO_PEER`) when the
binary exists and compares exit status and rendered files; a row whose `go` is `GoDiffers`
records how Go confd differs on purpose (docs/compatibility.md, docs/differences.md) and checks
that, and `GoSkip` says why a line cannot be given to Go confd here. Without the binary those
comparisons are skipped with the reason; our side always runs.

Servers start once (the session fixtures of conftest.py, plus the few this module needs of its
own: an etcd with users, an etcd with TLS, a Redis with a password, a Vault double with TLS, a
DNS double) and each is filled once, when the first line using it runs. Go confd runs a line
while ours runs it (one thread beside the test), so the comparison costs little extra time.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import yaml
from pyetcd import etcdrpc

from integration.aws_tls_front import AwsTlsFront
from integration.certs import TLSFiles, write_tls_files
from integration.consul_double import ConsulDouble
from integration.harness import CONFD
from integration.servers import (
    EtcdServer,
    MotoServer,
    RedisServer,
    ZooKeeperServer,
    free_port,
    terminate,
)
from integration.stores import (
    ConsulStore,
    DynamoDBStore,
    EnvStore,
    EtcdStore,
    SSMStore,
    VaultStore,
    ZooKeeperStore,
)
from integration.vault_double import VaultDouble
from testsupport.dns_double import DNSDouble
from testsupport.peer import go_confd

REPO = Path(__file__).resolve().parents[1]
CONFDIR = Path(__file__).parent / "go_confdir"
DATA: dict[str, str] = json.loads((CONFDIR / "data.json").read_text())
DESTS = ("basic.conf", "exists-test.conf", "iteration.conf", "nested.conf", "manykeys.conf",
         "prefix-basic.conf", "prefix-iteration.conf")  # fmt: skip
HOSTNAME = "confd-test-host"  # basic.conf.tmpl prints it (getenv), as Go confd's does

# Credentials the lines use; none may appear in what confd prints.
ROOT_TOKEN = "s.root-5f2c9a"
REDIS_PASSWORD = "redis-pw-8d1e"
ETCD_PASSWORD = "etcd-pw-47b0"
ROLE_ID = "role-3c1f"
SECRET_ID = "secret-id-9e42"
APP_ID = "app-id-confd"
USER_ID = "user-id-77aa"
GITHUB_TOKEN = "gh-token-0b6d"
VAULT_PASSWORD = "userpass-pw-c3d2"
KUBE_JWT = "kube-jwt-eyJhbGciOi.e30.sig"
CONSUL_PASSWORD = "consul-pw-1a9f"
WRONG = "wrong-pw-6a1b"
SECRETS = (ROOT_TOKEN, REDIS_PASSWORD, ETCD_PASSWORD, SECRET_ID, USER_ID, GITHUB_TOKEN,
           VAULT_PASSWORD, KUBE_JWT, CONSUL_PASSWORD, WRONG)  # fmt: skip
DEAD_PORT = free_port()  # nothing listens there: a node that is down


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoDiffers:
    """Go confd does something else here on purpose: its exit status, the outputs it renders
    (an `expected` folder, None: nothing) and why (docs/compatibility.md, differences.md).
    With `stop_after`, Go confd retries for long before it fails: it is stopped after that many
    seconds, and must have rendered nothing (or exited with `status`)."""

    status: int
    why: str
    expect: str | None = None
    stop_after: float | None = None  # Go confd keeps retrying: stopped then (status None)
    files: tuple[str, ...] | None = None  # of `expect`, the ones Go renders (None: all)


@dataclass(frozen=True)
class GoSkip:
    """The line cannot be given to Go confd here, and why."""

    why: str


@dataclass(frozen=True)
class Line:
    """One command line and what it must do here.

    `command` starts with `confd`; `{name}` is a value of the targets in `uses` (addresses,
    credentials) or `{confdir}`. `expect` is the folder of go_confdir holding the outputs it
    renders (None: it writes nothing); `files` limits them to some names. `log` are texts our
    output must hold, `ours_extra` flags only we get (Go confd has no such flag), `env` extra
    variables for both, `daemon` a line without -onetime: it runs until its files are rendered,
    then gets SIGTERM. `go` is None when Go confd does the same (compared), else GoDiffers or
    GoSkip."""

    id: str
    source: str
    command: str
    uses: tuple[str, ...] = ()
    status: int = 0
    expect: str | None = "expect"
    files: tuple[str, ...] = DESTS
    log: tuple[str, ...] = ()
    ours_extra: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    daemon: bool = False
    go: GoDiffers | GoSkip | None = None
    check: Callable[[dict[str, Target]], None] | None = None


GO_TEST = "kelseyhightower/confd integration/{}/test.sh"
QUICK_START = "docs/quick-start-guide.md (+ -confdir)"
ISSUE = "issue #12: {}"
NO_SRV_FOR_GO = GoSkip("Go confd asks the system's resolver for SRV records; the DNS double is "
                       "reachable only through our --srv-nameserver")  # fmt: skip
RANCHER_GONE = GoDiffers(1, "Go confd's rancher backend waits ~30 s for Rancher 1.x's metadata "
                         "service, then exits 1; here selecting it is an error at once, saying "
                         "the service no longer exists", stop_after=3)  # fmt: skip
FAILED = {"status": 1, "expect": None}
EMPTY = ("exists-test.conf", "iteration.conf", "nested.conf", "prefix-iteration.conf")  # no getv


def _consul_got_basic_auth(targets: dict[str, Target]) -> None:
    """The Consul double saw our requests carry -basic-auth's credentials (Go confd's, made
    alongside, are told apart by their user agent)."""
    double: ConsulDouble = targets["consul"].handle
    expected = "Basic " + base64.b64encode(f"ops:{CONSUL_PASSWORD}".encode()).decode()
    ours = [h for h in double.headers if not h.get("User-Agent", "").startswith("Go-http")]
    assert expected in {h.get("Authorization") for h in ours}


LINES: tuple[Line, ...] = (
    # -- Go confd's integration tests, one per backend -----------------------------------------
    Line("it-env", GO_TEST.format("env"),
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend env",
         ("env",)),
    Line("it-etcd", GO_TEST.format("etcd"),
         "confd --onetime --log-level debug --confdir {confdir} --backend etcd --node {etcd} "
         "--watch", ("etcd",)),
    Line("it-etcdv3", GO_TEST.format("etcdv3"),
         "confd --onetime --log-level debug --confdir {confdir} --backend etcdv3 --node {etcd} "
         "--watch", ("etcd",)),
    Line("it-consul", GO_TEST.format("consul"),
         "confd --onetime --log-level debug --confdir {confdir} --backend consul --node {consul}",
         ("consul",)),
    Line("it-redis", GO_TEST.format("redis") + " (first run)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend redis "
         "--node {redis}", ("redis",)),
    Line("it-redis-db0", GO_TEST.format("redis") + " (second run)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend redis "
         "--node {redis}/0", ("redis",)),
    Line("it-file", GO_TEST.format("file"),
         "confd --onetime --log-level debug --confdir {confdir} --backend file "
         "--file backends1/ --file backends2/  --watch", ("file",)),
    Line("it-zookeeper", GO_TEST.format("zookeeper"),
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend zookeeper "
         "--node {zookeeper} -watch", ("zookeeper",)),
    Line("it-vault", GO_TEST.format("vault"),
         "confd --onetime --log-level debug --confdir {confdir} --backend vault "
         "--auth-type token --auth-token {root_token} --node {vault}", ("vault",)),
    Line("it-vault-path", GO_TEST.format("vault-path"),
         "confd --onetime --log-level debug --confdir {confdir} --backend vault "
         "--auth-type app-role --role-id {role_id} --secret-id {secret_id} --path=test "
         "--node {vault}", ("vault",)),
    Line("it-dynamodb", GO_TEST.format("dynamodb") + " (first run)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend dynamodb "
         "--table confd", ("dynamodb",), log=("skipping key '/upstream/broken'",)),
    Line("it-dynamodb-watch", GO_TEST.format("dynamodb") + " (--watch: Go confd exits 1)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend dynamodb "
         "--table confd --watch", ("dynamodb",),
         go=GoDiffers(1, "Go confd refuses -watch for dynamodb before anything else; here "
                      "-onetime wins, and -watch alone polls every -interval")),
    Line("it-dynamodb-no-credentials", GO_TEST.format("dynamodb") + " (no AWS credentials)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend dynamodb "
         "--table confd", ("dynamodb", "no_aws_credentials"), **FAILED,
         log=("backend 'dynamodb'", "credentials")),
    Line("it-ssm", GO_TEST.format("ssm") + " (first run)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend ssm "
         "--table confd", ("ssm",), log=("backend ssm does not use --table; ignored",)),
    Line("it-ssm-watch", GO_TEST.format("ssm") + " (--watch: Go confd exits 1)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend ssm "
         "--table confd --watch", ("ssm",),
         go=GoDiffers(1, "Go confd refuses -watch for ssm; here -onetime wins, and -watch "
                      "alone polls every -interval")),
    Line("it-ssm-no-credentials", GO_TEST.format("ssm") + " (no AWS credentials)",
         "confd --onetime --log-level debug --confdir {confdir} --interval 5 --backend ssm "
         "--table confd", ("ssm", "no_aws_credentials"), **FAILED,
         log=("backend 'ssm'", "credentials")),
    Line("it-rancher", GO_TEST.format("rancher") + " (node: a dead port)",
         "confd --onetime --log-level debug --prefix /2015-07-25 --confdir {confdir} "
         "--backend rancher --node 127.0.0.1:{dead_port} --watch", **FAILED,
         log=("Rancher 1.x's metadata service",), go=RANCHER_GONE),
    # -- Go confd's docs -----------------------------------------------------------------------
    Line("qs-etcd", QUICK_START,
         "confd -onetime -backend etcd -node {etcd} -confdir {confdir}", ("etcd",)),
    Line("qs-consul", QUICK_START,
         "confd -onetime -backend consul -node {consul} -confdir {confdir}", ("consul",)),
    Line("qs-vault", QUICK_START,
         "confd -onetime -backend vault -node {vault} -auth-type token -auth-token {root_token} "
         "-confdir {confdir}", ("vault",)),
    Line("qs-dynamodb", QUICK_START,
         "confd -onetime -backend dynamodb -table confd -confdir {confdir}", ("dynamodb",)),
    Line("qs-env", QUICK_START, "confd -onetime -backend env -confdir {confdir}", ("env",)),
    Line("qs-file", QUICK_START,
         "confd -onetime -backend file -file myapp.yaml -confdir {confdir}", ("file",)),
    Line("qs-redis", QUICK_START,
         "confd -onetime -backend redis -node {redis} -confdir {confdir}", ("redis",)),
    Line("qs-redis-db4", QUICK_START + " (database 4)",
         "confd -onetime -backend redis -node {redis}/4 -confdir {confdir}", ("redis",)),
    Line("qs-rancher", QUICK_START,
         "confd -onetime -backend rancher -prefix /2015-07-25 -confdir {confdir}", **FAILED,
         log=("Rancher 1.x's metadata service",),
         go=GoSkip("Go confd would look up its default node, the host rancher-metadata, "
                   "beyond this machine")),
    Line("qs-ssm", QUICK_START, "confd -onetime -backend ssm -confdir {confdir}", ("ssm",)),
    Line("noop", "docs/noop-mode.md (+ -confdir; etcd from ETCDCTL_PEERS)",
         "confd -onetime -noop -confdir {confdir}", ("etcd",), expect=None,
         env={"ETCDCTL_PEERS": "{etcd}"}),
    Line("srv-etcd", "docs/dns-srv-records.md (+ -confdir; runs as a daemon)",
         "confd -backend etcd -srv-domain confd.io -confdir {confdir}", ("etcd", "dns"),
         daemon=True, ours_extra=("--srv-nameserver={dns}",),
         log=("SRV record set to _etcd._tcp.confd.io.",), go=NO_SRV_FOR_GO),
    Line("srv-consul", "docs/dns-srv-records.md (+ -confdir; runs as a daemon)",
         "confd -backend consul -srv-domain confd.io -confdir {confdir}", ("consul", "dns"),
         daemon=True, ours_extra=("--srv-nameserver={dns}",), go=NO_SRV_FOR_GO),
    Line("srv-scheme-https", "docs/dns-srv-records.md (+ -confdir; TLS files from CONFD_CLIENT_*; "
         "runs as a daemon)",
         "confd -scheme https -srv-domain confd.io -confdir {confdir}", ("etcd_tls",),
         daemon=True, ours_extra=("--srv-nameserver={dns_tls}",),
         env={"CONFD_CLIENT_CERT": "{tls_cert}", "CONFD_CLIENT_KEY": "{tls_key}",
              "CONFD_CLIENT_CAKEYS": "{tls_ca}"}, go=NO_SRV_FOR_GO),
    Line("k8s-doc-role", "docs/vault-kubernetes-auth.md (+ -confdir; -role is no Go confd flag)",
         "confd -onetime -backend vault -auth-type kubernetes -role confd -node {vault} "
         "-log-level debug -confdir {confdir}", ("vault",), status=2, expect=None,
         log=("no such flag '-role' (did you mean -role-id?)",)),
    Line("keyring", "docs/data_encryption.md (-secret-keyring: crypt functions not built)",
         "confd -node=http://127.0.0.1:{dead_port} -secret-keyring=/path/to/.secring.gpg "
         "-confdir {confdir} -interval 2", status=2, expect=None,
         log=("no such flag '-secret-keyring'",)),
    Line("config-file", "docs/configuration-guide.md (its example confd.toml, on our TLS etcd)",
         "confd -onetime -config-file confd.toml", ("confd_toml",), expect="expect-prefix"),
    Line("help", "docs/command-line-flags.md", "confd -h", expect=None, log=("--table",)),
    Line("version", "docs/command-line-flags.md (-version)", "confd -version", expect=None,
         log=("confd",)),
    # -- one per flag of issue #12 -------------------------------------------------------------
    Line("prefix", ISSUE.format("-prefix replaces each resource's prefix"),
         "confd -onetime -backend etcdv3 -node {etcd} -prefix /prefix -confdir {confdir}",
         ("etcd",), expect="expect-prefix"),
    Line("prefix-redis-hashes", ISSUE.format("-prefix, over Redis hashes as Go's redis test "
         "(basic.toml names single hash fields)"),
         "confd -onetime -backend redis -node {redis} -prefix /prefix -confdir {confdir}",
         ("redis",), expect="expect-prefix",
         go=GoDiffers(1, "Go confd's redis backend finds a hash field only when the hash itself "
                      "is read; here a field is a key below the hash like any other (the "
                      "Database contract), and one read serves every resource of a pass, so "
                      "basic.toml's single fields render too", expect="expect-prefix",
                      files=DESTS[1:])),
    Line("equals-forms", ISSUE.format("=-forms of flags"),
         "confd -onetime=true -backend=consul -node={consul} -confdir={confdir} "
         "-log-level=warn -interval=5 -noop=false -prefix=/prefix", ("consul",),
         expect="expect-prefix"),
    Line("equals-forms-env", ISSUE.format("=-forms, --double-dash too"),
         "confd --onetime=true --backend=env --confdir={confdir} --log-level=debug "
         "--keep-stage-file=false --sync-only=true", ("env",)),
    Line("repeated-node-etcd", ISSUE.format("repeated -node, the first one down"),
         "confd -onetime -backend etcdv3 -node http://127.0.0.1:{dead_port} -node {etcd} "
         "-confdir {confdir}", ("etcd",)),
    Line("repeated-node-redis", ISSUE.format("repeated -node, the first one down"),
         "confd -onetime -backend redis -node 127.0.0.1:{dead_port} -node {redis} "
         "-confdir {confdir}", ("redis",)),
    Line("repeated-node-zookeeper", ISSUE.format("repeated -node, the first one down"),
         "confd -onetime -backend zookeeper -node 127.0.0.1:{dead_port} -node {zookeeper} "
         "-confdir {confdir}", ("zookeeper",)),
    Line("repeated-node-consul", ISSUE.format("repeated -node, the first one down"),
         "confd -onetime -backend consul -node 127.0.0.1:{dead_port} -node {consul} "
         "-confdir {confdir}", ("consul",),
         go=GoDiffers(1, "Go confd's consul backend uses only the first -node; here the "
                      "agents are tried in order")),
    Line("node-with-env", ISSUE.format("common flags a backend does not use are ignored"),
         "confd -onetime -backend env -node 127.0.0.1:2379 -scheme https -confdir {confdir}",
         ("env",), log=("backend env does not use --node, --scheme; ignored",)),
    Line("srv-record", ISSUE.format("-srv-record"),
         "confd -onetime -backend etcdv3 -srv-record _etcd-client._tcp.confd.io "
         "-confdir {confdir}", ("etcd", "dns"), ours_extra=("--srv-nameserver={dns}",),
         go=NO_SRV_FOR_GO),
    Line("srv-domain-etcdv3", ISSUE.format("-srv-domain with -backend etcdv3"),
         "confd -onetime -backend etcdv3 -srv-domain confd.io -confdir {confdir}",
         ("etcd", "dns"), ours_extra=("--srv-nameserver={dns}",),
         log=("SRV record set to _etcdv3._tcp.confd.io.",), go=NO_SRV_FOR_GO),
    Line("srv-missing", ISSUE.format("-srv-domain without such a record"),
         "confd -onetime -backend etcdv3 -srv-domain nowhere.test -confdir {confdir}",
         ("dns",), ours_extra=("--srv-nameserver={dns}",), **FAILED,
         log=("_etcdv3._tcp.nowhere.test.",), go=NO_SRV_FOR_GO),
    Line("basic-auth-etcd", ISSUE.format("-basic-auth (etcd users)"),
         "confd -onetime -backend etcdv3 -node {etcd_auth} -basic-auth -username root "
         "-password {etcd_password} -confdir {confdir}", ("etcd_auth",)),
    Line("username-without-basic-auth", ISSUE.format("-username without -basic-auth"),
         "confd -onetime -backend etcdv3 -node {etcd_auth} -username root "
         "-password {etcd_password} -confdir {confdir}", ("etcd_auth",),
         go=GoDiffers(1, "Go confd sends etcd the username only with -basic-auth; here "
                      "authentication is on whenever a username is given")),
    Line("basic-auth-etcd-wrong", ISSUE.format("-basic-auth with a wrong password"),
         "confd -onetime -backend etcdv3 -node {etcd_auth} -basic-auth -username root "
         "-password {wrong} -confdir {confdir}", ("etcd_auth",), **FAILED,
         log=("authentication as user 'root' failed",)),
    Line("basic-auth-consul", ISSUE.format("-basic-auth (consul: HTTP basic auth)"),
         "confd -onetime -backend consul -node {consul} -basic-auth -username ops "
         "-password {consul_password} -confdir {confdir}", ("consul",),
         check=_consul_got_basic_auth),
    Line("tls-etcd", ISSUE.format("-client-cert/-client-key/-client-ca-keys (etcd over TLS)"),
         "confd -onetime -backend etcdv3 -node https://localhost:{etcd_tls_port} "
         "-client-cert {tls_cert} -client-key {tls_key} -client-ca-keys {tls_ca} "
         "-confdir {confdir}", ("etcd_tls",)),
    Line("client-insecure-etcd", ISSUE.format("-client-insecure (etcd over TLS)"),
         "confd -onetime -backend etcdv3 -node https://127.0.0.1:{etcd_tls_port} "
         "-client-cert {tls_cert} -client-key {tls_key} -client-insecure -confdir {confdir}",
         ("etcd_tls",), log=("backend 'etcd': client_insecure: etcd's TLS certificate is not "
                             "verified",),
         go=GoDiffers(1, "Go confd parses -client-insecure but never uses it: the server's "
                      "certificate is verified (it names localhost, not 127.0.0.1); Go "
                      "redials for ~20 s, then exits 1", stop_after=5)),
    Line("client-insecure-vault", ISSUE.format("-client-insecure (vault over TLS)"),
         "confd -onetime -backend vault -node {vault_tls_ip} -auth-type token "
         "-auth-token {root_token} -client-insecure -confdir {confdir}", ("vault_tls",),
         log=("backend 'vault': client_insecure: Vault's TLS certificate is not verified",),
         go=GoDiffers(1, "Go confd parses -client-insecure but never uses it: the server's "
                      "certificate is verified")),
    Line("table-missing", ISSUE.format("-table naming no table"),
         "confd -onetime -backend dynamodb -table nosuch -confdir {confdir}", ("dynamodb",),
         **FAILED, log=("nosuch",)),
    Line("table-absent", ISSUE.format("-backend dynamodb without -table"),
         "confd -onetime -backend dynamodb -confdir {confdir}", ("dynamodb",), **FAILED,
         log=("'table'",)),
    Line("table-typo", ISSUE.format("a flag Go confd never had"),
         "confd -onetime -backend dynamodb -tabel confd -confdir {confdir}", status=2,
         expect=None, log=("no such flag '-tabel' (did you mean -table?)",)),
    Line("auth-approle", ISSUE.format("-auth-type app-role at its default path"),
         "confd -onetime -backend vault -node {vault} -auth-type app-role -role-id {role_id} "
         "-secret-id {secret_id} -confdir {confdir}", ("vault",)),
    Line("auth-approle-vault-spelling", ISSUE.format("-auth-type approle (Vault's spelling)"),
         "confd -onetime -backend vault -node {vault} -auth-type approle -role-id {role_id} "
         "-secret-id {secret_id} -confdir {confdir}", ("vault",),
         go=GoDiffers(1, "Go confd knows only its own spelling app-role (it fails to "
                      "authenticate); approle is accepted here too")),
    Line("auth-app-id", ISSUE.format("-auth-type app-id"),
         "confd -onetime -backend vault -node {vault} -auth-type app-id -app-id {app_id} "
         "-user-id {user_id} -confdir {confdir}", ("vault",)),
    Line("auth-userpass", ISSUE.format("-auth-type userpass"),
         "confd -onetime -backend vault -node {vault} -auth-type userpass -username confd "
         "-password {vault_password} -confdir {confdir}", ("vault",)),
    Line("auth-userpass-wrong", ISSUE.format("-auth-type userpass, wrong password"),
         "confd -onetime -backend vault -node {vault} -auth-type userpass -username confd "
         "-password {wrong} -confdir {confdir}", ("vault",), **FAILED,
         log=("backend 'vault'", "invalid username or password")),
    Line("auth-github", ISSUE.format("-auth-type github"),
         "confd -onetime -backend vault -node {vault} -auth-type github "
         "-auth-token {github_token} -confdir {confdir}", ("vault",)),
    Line("auth-kubernetes", ISSUE.format("-auth-type kubernetes (the corrected doc line)"),
         "confd -onetime -backend vault -auth-type kubernetes -role-id confd -node {vault} "
         "-log-level debug -confdir {confdir}", ("vault",),
         ours_extra=("--backend-opt", "kubernetes_token_path={kube_jwt_file}"),
         go=GoSkip("Go confd reads the service account token only from "
                   "/var/run/secrets/kubernetes.io/serviceaccount/token (not written here)")),
    Line("auth-cert", ISSUE.format("-auth-type cert with -client-cert/-client-key/-client-ca-keys"),
         "confd -onetime -backend vault -node {vault_tls} -auth-type cert "
         "-client-cert {tls_cert} -client-key {tls_key} -client-ca-keys {tls_ca} "
         "-confdir {confdir}", ("vault_tls",)),
    Line("auth-unknown", ISSUE.format("an unknown -auth-type"),
         "confd -onetime -backend vault -node {vault} -auth-type nosuch -confdir {confdir}",
         ("vault",), **FAILED, log=("backend 'vault'", "nosuch")),
    Line("redis-client-key", ISSUE.format("Redis -client-key as the password (Go's quirk)"),
         "confd -onetime -backend redis -node {redis_pw} -client-key {redis_password} "
         "-confdir {confdir}", ("redis_pw",), log=("deprecated, give it as --password",)),
    Line("redis-password", ISSUE.format("Redis -password"),
         "confd -onetime -backend redis -node {redis_pw} -password {redis_password} "
         "-confdir {confdir}", ("redis_pw",),
         go=GoDiffers(1, "Go confd's redis backend takes the password only from -client-key")),
    Line("redis-no-password", ISSUE.format("Redis with a password, none given"),
         "confd -onetime -backend redis -node {redis_pw} -confdir {confdir}", ("redis_pw",),
         **FAILED, log=("backend 'redis'",)),
    Line("redis-empty-db", ISSUE.format("-node host:port/db reaches the backend (5: empty)"),
         "confd -onetime -backend redis -node {redis}/5 -confdir {confdir}", ("redis",),
         status=1, expect="expect-empty", files=EMPTY,
         log=('key "/database/host" not found',)),
    Line("log-level-fatal", ISSUE.format("-log-level fatal"),
         "confd -onetime -backend env -log-level fatal -confdir {confdir}", ("env",)),
    Line("log-level-panic", ISSUE.format("-log-level panic"),
         "confd -onetime -backend env -log-level panic -confdir {confdir}", ("env",)),
)

QUIET = ("log-level-fatal", "log-level-panic")  # nothing below error is printed


# --- targets: what a line needs, started and filled once ---------------------------------------


@dataclass
class Target:
    """A store (or helper) the lines use: its `{placeholders}`, the environment confd needs to
    reach it (`go_env`: Go confd's, when it differs), files to put in the run's directory."""

    values: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    go_env: dict[str, str] | None = None
    files: dict[str, str] = field(default_factory=dict)
    handle: Any = None


def _yaml(keys: dict[str, str]) -> str:
    tree: dict[str, Any] = {}
    for key, value in keys.items():
        *parents, leaf = key.strip("/").split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return yaml.safe_dump(tree, default_style='"')


def _below(*prefixes: str) -> dict[str, str]:
    return {k: v for k, v in DATA.items() if k.startswith(prefixes)}


@pytest.fixture(scope="module")
def lines_env() -> Target:
    return Target(env={EnvStore.variable(k): v for k, v in DATA.items()})


@pytest.fixture(scope="module")
def lines_file() -> Target:
    """The data as YAML: split over two directories as Go confd's file test does, and whole in
    the quick start guide's myapp.yaml."""
    return Target(files={
        "backends1/1.yaml": _yaml(_below("/key", "/database/")),
        "backends1/2.yaml": _yaml(_below("/upstream/")),
        "backends2/1.yaml": _yaml(_below("/nested/", "/pool/")),
        "backends2/2.yaml": _yaml(_below("/prefix/")),
        "myapp.yaml": _yaml(DATA),
    })  # fmt: skip


@pytest.fixture(scope="module")
def lines_etcd(etcd_server: EtcdServer) -> Iterator[Target]:
    store = EtcdStore(etcd_server)
    store.load(DATA)
    store.close()
    yield Target({"etcd": etcd_server.url})


@pytest.fixture(scope="module")
def lines_etcd_auth() -> Iterator[Target]:
    """An etcd of this module with authentication on: user root, ETCD_PASSWORD."""
    with EtcdServer() as server:
        store = EtcdStore(server)
        store.load(DATA)
        store.close()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            auth = etcdrpc.AuthStub(channel)
            auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="root"), timeout=10)
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password=ETCD_PASSWORD),
                         timeout=10)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"),
                               timeout=10)
            auth.AuthEnable(etcdrpc.AuthEnableRequest(), timeout=10)
        yield Target({"etcd_auth": server.url, "etcd_password": ETCD_PASSWORD, "wrong": WRONG})


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A CA, a server certificate naming only `localhost` (not 127.0.0.1) and a client one."""
    return write_tls_files(tmp_path_factory.mktemp("tls"), "localhost")


def _tls_values(tls: TLSFiles) -> dict[str, str]:
    return {"tls_ca": str(tls.ca), "tls_cert": str(tls.client_cert),
            "tls_key": str(tls.client_key)}  # fmt: skip


@pytest.fixture(scope="module")
def lines_etcd_tls(tls_files: TLSFiles) -> Iterator[Target]:
    """An etcd of this module serving TLS only, demanding a client certificate; the DNS double
    `dns_tls` names it as `_etcd._tcp.confd.io`."""
    tls = {"cert": str(tls_files.server_cert), "key": str(tls_files.server_key),
           "ca": str(tls_files.ca)}  # fmt: skip
    with EtcdServer(tls=tls) as server, DNSDouble() as dns:
        credentials = grpc.ssl_channel_credentials(
            tls_files.ca.read_bytes(), tls_files.client_key.read_bytes(),
            tls_files.client_cert.read_bytes(),
        )
        with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
            kv = etcdrpc.KVStub(channel)
            for key, value in DATA.items():
                kv.Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()), timeout=10)
        dns.srv["_etcd._tcp.confd.io."] = [(0, 0, server.port, "localhost.")]
        yield Target({"etcd_tls_port": str(server.port), "dns_tls": f"127.0.0.1:{dns.port}",
                      **_tls_values(tls_files)})


@pytest.fixture(scope="module")
def lines_confd_toml(lines_etcd_tls: Target) -> Target:
    """A confd.toml written as docs/configuration-guide.md's example (Go confd's key names:
    `log-level`, `client_cakeys`, `nodes`...), naming the TLS etcd and the prefix /prefix."""
    values = lines_etcd_tls.values
    text = f"""\
backend = "etcdv3"
client_cert = "{values['tls_cert']}"
client_key = "{values['tls_key']}"
client_cakeys = "{values['tls_ca']}"
confdir = "{CONFDIR}"
log-level = "debug"
interval = 600
nodes = [
  "https://localhost:{values['etcd_tls_port']}",
]
noop = false
prefix = "/prefix"
scheme = "https"
"""
    return Target(files={"confd.toml": text})


@pytest.fixture(scope="module")
def lines_consul(consul_double: ConsulDouble) -> Target:
    ConsulStore(consul_double).load(DATA)
    return Target({"consul": consul_double.address, "consul_password": CONSUL_PASSWORD},
                  handle=consul_double)


def _fill_redis(client: redis.Redis, hashes: bool) -> None:
    """The data as strings; with `hashes`, /prefix/database and /prefix/upstream are hashes, as
    Go confd's redis test writes them."""
    client.flushdb()
    grouped = ("/prefix/database/", "/prefix/upstream/")
    for key, value in DATA.items():
        if hashes and key.startswith(grouped):
            parent, _, name = key.rpartition("/")
            client.hset(parent, name, value)
        else:
            client.set(key, value)


@pytest.fixture(scope="module")
def lines_redis(redis_server: RedisServer) -> Iterator[Target]:
    """The session's Redis: the data in database 0 (hashes as Go's test) and 4, none in 5."""
    for db in (0, 4):
        with redis.Redis(port=redis_server.port, db=db, decode_responses=True) as client:
            _fill_redis(client, hashes=db == 0)
    yield Target({"redis": f"127.0.0.1:{redis_server.port}"})
    with redis.Redis(port=redis_server.port, db=4) as client:
        client.flushdb()


@pytest.fixture(scope="module")
def lines_redis_pw() -> Iterator[Target]:
    """A Redis of this module that wants REDIS_PASSWORD."""
    with RedisServer(extra=["--requirepass", REDIS_PASSWORD]) as server:
        with redis.Redis(port=server.port, password=REDIS_PASSWORD) as client:
            _fill_redis(client, hashes=False)
        yield Target({"redis_pw": f"127.0.0.1:{server.port}", "redis_password": REDIS_PASSWORD})


@pytest.fixture(scope="module")
def lines_zookeeper(zookeeper_server: ZooKeeperServer) -> Target:
    ZooKeeperStore(zookeeper_server).load(DATA)
    return Target({"zookeeper": zookeeper_server.address})


def _vault_logins(double: VaultDouble) -> None:
    double.add_login("approle", {"role_id": ROLE_ID, "secret_id": SECRET_ID})
    double.add_login("approle", {"role_id": ROLE_ID, "secret_id": SECRET_ID}, mount="test")
    double.add_login("app-id", {"app_id": APP_ID, "user_id": USER_ID})
    double.add_login("userpass", {"confd": VAULT_PASSWORD})
    double.add_login("github", {"token": GITHUB_TOKEN})
    double.add_login("kubernetes", {"role": "confd", "jwt": KUBE_JWT})


@pytest.fixture(scope="module")
def lines_vault(vault_double: VaultDouble, tmp_path_factory: pytest.TempPathFactory) -> Target:
    """The session's Vault double, laid out as Go confd's vault test (a KV v1 mount per first
    key segment, `{"value": ...}` secrets), with every auth method it offers enabled."""
    VaultStore(vault_double).load(DATA)
    vault_double.tokens.setdefault(ROOT_TOKEN, vault_double.tokens[vault_double.root_token])
    _vault_logins(vault_double)
    jwt = tmp_path_factory.mktemp("k8s") / "token"
    jwt.write_text(KUBE_JWT + "\n")
    return Target({
        "vault": vault_double.address, "root_token": ROOT_TOKEN, "role_id": ROLE_ID,
        "secret_id": SECRET_ID, "app_id": APP_ID, "user_id": USER_ID,
        "github_token": GITHUB_TOKEN, "vault_password": VAULT_PASSWORD, "wrong": WRONG,
        "kube_jwt_file": str(jwt),
    })  # fmt: skip


@pytest.fixture(scope="module")
def lines_vault_tls(tls_files: TLSFiles) -> Iterator[Target]:
    """A Vault double of this module over TLS (certificate for localhost only), with cert
    login."""
    tls = (str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca))
    with VaultDouble(root_token=ROOT_TOKEN, tls=tls) as double:
        VaultStore(double).load(DATA)
        double.add_login("cert", {})
        yield Target({
            "vault_tls": f"https://localhost:{double.port}",
            "vault_tls_ip": f"https://127.0.0.1:{double.port}", "root_token": ROOT_TOKEN,
            **_tls_values(tls_files),
        })  # fmt: skip


@pytest.fixture(scope="module")
def aws_front(moto_server: MotoServer) -> Iterator[AwsTlsFront]:
    """How Go confd (no endpoint setting) reaches moto: an HTTPS proxy (aws_tls_front.py)."""
    with AwsTlsFront(moto_server.port, moto_server.region) as front:
        yield front


def _aws_target(moto_server: MotoServer, front: AwsTlsFront) -> Target:
    go_env = {
        **moto_server.env(), **front.env(),
        "AWS_ENDPOINT_URL": "",  # Go confd's SDK does not read it; the proxy takes its place
    }  # fmt: skip
    return Target(env=moto_server.env(), go_env=go_env, handle=moto_server)


@pytest.fixture(scope="module")
def lines_dynamodb(moto_server: MotoServer, aws_front: AwsTlsFront) -> Target:
    """Table `confd` in Go confd's item layout, plus the item of another type that Go confd's
    dynamodb test adds "to see if it is handled"."""
    store = DynamoDBStore(moto_server)
    store.load(DATA)
    store.client.put_item(TableName="confd",
                          Item={"key": {"S": "/upstream/broken"}, "value": {"N": "4711"}})
    return _aws_target(moto_server, aws_front)


@pytest.fixture(scope="module")
def lines_ssm(moto_server: MotoServer, aws_front: AwsTlsFront) -> Target:
    SSMStore(moto_server).load(DATA)
    return _aws_target(moto_server, aws_front)


@pytest.fixture(scope="module")
def lines_no_aws_credentials() -> Target:
    """No AWS credentials anywhere (the other AWS variables stay)."""
    gone = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    return Target(env=gone, go_env=gone)


@pytest.fixture(scope="module")
def lines_dns(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A DNS double naming our etcd and Consul as `confd.io`'s (as docs/dns-srv-records.md)."""
    with DNSDouble() as dns:
        for name, fixture, port_of in (
            ("_etcd._tcp.confd.io.", "etcd_server", lambda s: s.port),
            ("_etcdv3._tcp.confd.io.", "etcd_server", lambda s: s.port),
            ("_etcd-client._tcp.confd.io.", "etcd_server", lambda s: s.port),
            ("_consul._tcp.confd.io.", "consul_double", lambda s: s.port),
        ):
            server = request.getfixturevalue(fixture)
            dns.srv[name] = [(0, 0, port_of(server), "localhost.")]
        yield Target({"dns": f"127.0.0.1:{dns.port}"})


# --- running a line ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one confd process did: exit status (None: still running when stopped), everything
    it printed, the files it rendered."""

    status: int | None
    output: str
    files: dict[str, str]


def expected(expect: str | None, files: tuple[str, ...] = DESTS) -> dict[str, str]:
    """The outputs of go_confdir's folder `expect` (None: no file at all)."""
    if expect is None:
        return {}
    return {name: (CONFDIR / expect / name).read_text() for name in files}


def rendered(workdir: Path) -> dict[str, str]:
    return {name: (workdir / name).read_text() for name in DESTS if (workdir / name).exists()}


def _base_env() -> dict[str, str]:
    """This process's environment without anything that would choose a backend setting."""
    drop = ("CONFD_", "AWS_", "VAULT_", "CONSUL_", "ETCDCTL_", "DYNAMODB_", "SSM_", "HTTPS_PROXY",
            "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["HOSTNAME"] = HOSTNAME
    return env


def prepare(line: Line, request: pytest.FixtureRequest) -> tuple[dict[str, Target], dict[str, str]]:
    """Start and fill what `line` uses: its targets, and every `{placeholder}` value."""
    targets = {name: request.getfixturevalue(f"lines_{name}") for name in line.uses}
    values = {"confdir": str(CONFDIR), "dead_port": str(DEAD_PORT)}
    for target in targets.values():
        values.update(target.values)
    return targets, values


def run(
    binary: Path, line: Line, targets: dict[str, Target], values: dict[str, str],
    workdir: Path, go: bool = False,
) -> Run:
    """Run `line` with `binary` in `workdir` (where its relative dests land); `go`: as Go
    confd (its environment, without our extra flags, stopped after `stop_after`)."""
    workdir.mkdir(parents=True)
    env = _base_env()
    for target in targets.values():
        for path, text in target.files.items():
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            (workdir / path).write_text(text)
        env.update(target.go_env if go and target.go_env is not None else target.env)
    env.update({k: v.format(**values) for k, v in line.env.items()})
    env = {k: v for k, v in env.items() if v != ""}  # "": unset
    argv = [str(binary), *shlex.split(line.command.format(**values))[1:]]
    if not go:
        argv += [arg.format(**values) for arg in line.ours_extra]
    if line.daemon:
        return _run_daemon(argv, env, workdir, expected(line.expect, line.files))
    stop_after = line.go.stop_after if go and isinstance(line.go, GoDiffers) else None
    try:
        done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=stop_after or 60, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as stopped:
        if stop_after is None:
            raise
        output = [o.decode(errors="replace") if isinstance(o, bytes) else o or ""
                  for o in (stopped.stdout, stopped.stderr)]  # fmt: skip
        return Run(None, "".join(output), rendered(workdir))
    return Run(done.returncode, done.stdout + done.stderr, rendered(workdir))


def _run_daemon(argv: list[str], env: dict[str, str], workdir: Path,
                wanted: dict[str, str]) -> Run:
    """Start a daemon, wait (at most 30 s) until it rendered `wanted`, then stop it (SIGTERM)."""
    log_path = workdir.parent / f"{workdir.name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 30
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if rendered(workdir) == wanted:
                break
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    finally:
        terminate(process)
    return Run(process.returncode, log_path.read_text(errors="replace"), rendered(workdir))


@dataclass
class Runs:
    """A line's run by us, and Go confd's run of it (None: not run), made side by side."""

    ours: Run
    go: Future[Run] | None


RUNS: dict[str, Runs] = {}  # by line id: test_same_as_go_confd compares what test_ours ran


@pytest.fixture(scope="module")
def beside() -> Iterator[ThreadPoolExecutor]:
    """Where Go confd runs a line while ours runs it (halves the module's time)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="go-confd") as executor:
        yield executor


def runs(line: Line, request: pytest.FixtureRequest, beside: ThreadPoolExecutor,
         workdir: Path) -> Runs:
    """Run `line` through ours and, when the binary exists and the line can be given to it,
    through Go confd at the same time; once per line."""
    if line.id not in RUNS:
        if not CONFD.exists():
            pytest.fail(f"{CONFD} is missing: run scripts/bootstrap")
        targets, values = prepare(line, request)
        binary = go_confd()
        go = None
        if binary is not None and not isinstance(line.go, GoSkip):
            go = beside.submit(run, binary, line, targets, values, workdir / "go", True)
        RUNS[line.id] = Runs(run(CONFD, line, targets, values, workdir / "ours"), go)
    return RUNS[line.id]


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("line", LINES, ids=[line.id for line in LINES])
def test_ours(line: Line, request: pytest.FixtureRequest, beside: ThreadPoolExecutor,
              tmp_path: Path) -> None:
    done = runs(line, request, beside, tmp_path).ours
    context = f"{line.source}\n$ {line.command}\n{done.output[-4000:]}"
    assert done.status == line.status, context
    assert done.files == expected(line.expect, line.files), context
    for text in line.log:
        assert text in done.output, f"{text!r} not in the output of {context}"
    for secret in SECRETS:
        assert secret not in done.output, f"a secret is in the output of {context}"
    if line.id in QUIET:
        assert not any(level in done.output for level in ("INFO", "DEBUG", "WARNING")), context
    if line.check:
        line.check(prepare(line, request)[0])


@pytest.mark.parametrize("line", LINES, ids=[line.id for line in LINES])
def test_same_as_go_confd(line: Line, request: pytest.FixtureRequest,
                          beside: ThreadPoolExecutor, tmp_path: Path) -> None:
    if go_confd() is None:
        pytest.skip("Go confd is not on this machine (shared/peer/confd-go, $CONFD_GO_PEER)")
    if isinstance(line.go, GoSkip):
        pytest.skip(line.go.why)
    both = runs(line, request, beside, tmp_path)
    assert both.go is not None
    mine, theirs = both.ours, both.go.result()
    context = f"{line.source}\n$ {line.command}\nGo confd said:\n{theirs.output[-4000:]}"
    if isinstance(line.go, GoDiffers):
        status = (line.go.status, None) if line.go.stop_after else (line.go.status,)
        assert theirs.status in status, context
        assert theirs.files == expected(line.go.expect, line.go.files or DESTS), context
        return
    if line.status == 2:  # a flag error: Go prints its usage, we name the flag
        assert theirs.status == 2, context
        return
    assert theirs.status == mine.status, context
    assert theirs.files == mine.files, context
