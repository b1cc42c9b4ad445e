"""What the AWS backends share: boto3 loaded only when one of them is selected, one client per
backend built from the standard AWS chain plus confd's settings, and AWS failures turned into one
clear error naming the backend.

boto3 is the optional `aws` extra; without it, selecting an AWS backend is an error naming the
command that installs it. Nothing here imports boto3 or botocore until `load_boto3` is called.

- Region: the `region` setting, else `AWS_REGION` (what the Go SDKs read), else botocore's chain
  (`AWS_DEFAULT_REGION`, the profile's `region`), else the EC2 instance's own region from the
  instance metadata service (as the fork does), else an error.
- Endpoint: the `endpoint` setting, else the variables Go confd and its fork read for a local
  endpoint (`DYNAMODB_LOCAL`, `SSM_LOCAL`, ...; see `LOCAL_ENDPOINTS`), else botocore's own
  (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`), else AWS's.
- Credentials: botocore's chain (environment, profile, web identity, container, instance role),
  resolved at the first request.

botocore logs whole requests and answers at debug level, secret values included; its loggers are
held at WARNING so that a `--log-level debug` run (or a plugin, whose root logger is at debug)
never writes a secret.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from plugin_sdk.database import Database, DatabaseError, Setting

__all__ = [
    "AWS_SETTINGS",
    "INSTALL",
    "LOCAL_ENDPOINTS",
    "AwsClient",
    "AwsDatabase",
    "LocalEndpoint",
    "load_boto3",
    "local_endpoint",
]

INSTALL = "pip install 'confd-py[aws]'"

AWS_SETTINGS = (
    Setting(
        "region", str, None,
        "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile, the EC2 instance's)",
    ),
    Setting(
        "endpoint", str, None,
        "service endpoint URL (default: AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, AWS's)",
    ),
    Setting("timeout", float, 5.0, "seconds to connect, and to wait for each answer"),
)

# Error codes AWS answers when it does not accept the credentials (as opposed to denying a
# request made with valid ones).
_BAD_CREDENTIALS = {
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
    "SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId", "ExpiredToken",
    "ExpiredTokenException", "MissingAuthenticationToken", "MissingAuthenticationTokenException",
    "AuthFailure", "RequestExpired",
}  # fmt: skip
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")
_CODE_IN_BODY = re.compile(r"<Code>\s*(\w+)\s*</Code>|\"__type\"\s*:\s*\"(?:[^\"#]*#)?(\w+)\"")
_MESSAGE_IN_BODY = re.compile(r"<Message>([^<]*)</Message>")


@dataclass(frozen=True)
class LocalEndpoint:
    """How Go confd or its fork is pointed at a local service: a switch variable, then the
    variables that may hold the URL (in order), then the URL used when only the switch is set."""

    switch: str
    urls: tuple[str, ...]
    default: str | None = None


LOCAL_ENDPOINTS: dict[str, LocalEndpoint] = {
    # Go confd: DYNAMODB_LOCAL means http://localhost:8000 (some versions also read
    # DYNAMODB_LOCAL_ENDPOINT); the fork reads the URL from DYNAMODB_ENDPOINT_URL.
    "dynamodb": LocalEndpoint(
        "DYNAMODB_LOCAL", ("DYNAMODB_ENDPOINT_URL", "DYNAMODB_LOCAL_ENDPOINT"),
        "http://localhost:8000",
    ),
    # Go confd: SSM_LOCAL means http://localhost:8001; the fork reads SSM_ENDPOINT_URL.
    "ssm": LocalEndpoint("SSM_LOCAL", ("SSM_ENDPOINT_URL",), "http://localhost:8001"),
    "secretsmanager": LocalEndpoint("SECRETSMANAGER_LOCAL", ("SECRETSMANAGER_ENDPOINT_URL",)),
    "acm": LocalEndpoint("ACM_LOCAL", ("ACM_ENDPOINT_URL",)),
}  # fmt: skip


def local_endpoint(service: str, environ: Mapping[str, str]) -> str | None:
    """The endpoint Go confd or its fork would use for `service` from `environ`, if any."""
    spec = LOCAL_ENDPOINTS.get(service)
    if spec is None or not environ.get(spec.switch):
        return None
    for name in spec.urls:
        if environ.get(name):
            return environ[name]
    return spec.default


def load_boto3(backend: str) -> ModuleType:
    """Import boto3, or fail with the command that installs it; quiet botocore's loggers."""
    try:
        import boto3
    except ModuleNotFoundError as exc:
        if exc.name in ("boto3", "botocore"):
            raise DatabaseError(
                f"backend {backend!r} needs boto3, which is not installed: run {INSTALL}"
            ) from None
        raise DatabaseError(  # a broken install: one of boto3's own dependencies is missing
            f"backend {backend!r} needs boto3, whose dependency {exc.name} is missing: "
            f"run {INSTALL}"
        ) from None
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET included: it would inherit debug
            logger.setLevel(logging.WARNING)
    return boto3


def _shown(url: str | None) -> str:
    """`url` without any user:password part, for messages."""
    if not url:
        return "AWS's default endpoint"
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class AwsClient:
    """One boto3 client for a backend, made at the first call; every failure is a DatabaseError.

    `call` and `pages` take `what` (the request as a person would say it, e.g. "reading table
    'confd'"), which every error message names, with the region and endpoint.
    """

    def __init__(
        self,
        backend: str,
        service: str,
        options: Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if options.get("timeout", 5.0) <= 0:
            raise DatabaseError("setting 'timeout' must be above 0")
        self.backend = backend
        self.service = service
        self._boto3 = load_boto3(backend)
        self._environ = os.environ if environ is None else environ
        self._options = options
        self._lock = threading.Lock()
        self._client: Any = None
        self.region: str | None = None
        self.endpoint: str | None = None

    # --- the client ---------------------------------------------------------------------------

    def _region(self, session: Any) -> str:
        region = self._options.get("region") or self._environ.get("AWS_REGION")
        region = region or session.region_name
        if not region and self._environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
            from builtin.imds import instance_region

            region = instance_region(self._environ)
        if not region:
            raise DatabaseError(
                "no AWS region: set AWS_REGION (or the 'region' "
                "setting, AWS_DEFAULT_REGION, or a profile's region)"
            )
        return region

    def _make(self) -> Any:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        try:
            session = self._boto3.session.Session()
            region = self._region(session)
            endpoint = self._options.get("endpoint") or local_endpoint(
                self.backend, self._environ
            )
            timeout = self._options.get("timeout", 5.0)
            config = Config(connect_timeout=timeout, read_timeout=timeout,
                            user_agent_extra="confd-py")  # fmt: skip
            if not (self._environ.get("AWS_RETRY_MODE") or self._environ.get("AWS_MAX_ATTEMPTS")):
                # Three tries with standard backoff: an unreachable endpoint fails in seconds
                # (botocore's legacy default retries five times for up to ~15 s).
                config = config.merge(Config(retries={"mode": "standard", "total_max_attempts": 3}))
            client = session.client(
                self.service, region_name=region, endpoint_url=endpoint or None, config=config
            )
        except BotoCoreError as exc:
            raise DatabaseError(
                f"cannot set up the AWS client: {type(exc).__name__}"
            ) from None
        except ValueError as exc:  # a malformed endpoint URL
            raise DatabaseError(f"bad endpoint: {exc}") from None
        self.region = region
        self.endpoint = client.meta.endpoint_url
        return client

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (region lookup, endpoint, retries, timeouts)."""
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    # --- calls --------------------------------------------------------------------------------

    def where(self) -> str:
        """`region R, endpoint URL` of the client, for messages."""
        return f"region {self.region or '?'}, endpoint {_shown(self.endpoint)}"

    def error_code(self, exc: BaseException) -> str | None:
        """The AWS error code of a botocore ClientError, else None.

        When the answer's body was not in the protocol botocore expected (an XML error to a
        JSON API, as moto and some proxies send), botocore's code is the HTTP status; the AWS
        code is then taken from the body (`<Code>X</Code>` or `"__type": "...#X"`) if it has one.
        """
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):
            return None
        error = response.get("Error", {})
        code = str(error.get("Code") or "")
        if code.isdigit():
            found = _CODE_IN_BODY.search(str(error.get("Message") or ""))
            if found:
                return found.group(1) or found.group(2)
        return code or None

    def _message(self, exc: Any) -> str:
        """AWS's message for a ClientError, from the body when botocore could not parse it."""
        error = exc.response.get("Error", {})
        message = str(error.get("Message") or "").strip()
        if str(error.get("Code") or "").isdigit():
            found = _MESSAGE_IN_BODY.search(message)
            return found.group(1).strip() if found else ""
        return message

    def _translate(self, exc: Exception, what: str) -> DatabaseError:
        """One message for a failed request, naming the backend, the request and the cause.

        AWS's own message is shown only for access denials (it names the action and resource
        refused) and other service errors; never for credential errors, whose details help no
        one and may echo an access key id.
        """
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            ParamValidationError,
            PartialCredentialsError,
        )

        prefix = f"{what} ({self.where()})"
        if isinstance(exc, ClientError):
            code = self.error_code(exc) or "unknown error"
            message = self._message(exc)
            if code in _BAD_CREDENTIALS:
                return DatabaseError(
                    f"{prefix}: AWS did not accept the credentials ({code}); check "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role"
                )
            if code in _ACCESS_DENIED:
                return DatabaseError(f"{prefix}: access denied: {message or code}")
            if code.isdigit():  # no AWS error code in the answer at all
                status = int(code)
                if status in (401, 403):
                    return DatabaseError(
                        f"{prefix}: refused (credentials or permissions): HTTP {status}"
                    )
                return DatabaseError(f"{prefix}: failed: HTTP {status}")
            return DatabaseError(f"{prefix}: {code}: {message}" if message else f"{prefix}: {code}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return DatabaseError(
                f"{prefix}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance or task role)"
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            return DatabaseError(f"{prefix}: cannot reach {_shown(self.endpoint)}: "
                                 f"{type(exc).__name__}")
        if isinstance(exc, ParamValidationError):
            return DatabaseError(f"{prefix}: the request was refused as invalid before sending")
        return DatabaseError(f"{prefix}: {type(exc).__name__}")

    def call(
        self, operation: str, what: str, *, absent: Collection[str] = (), **params: Any
    ) -> dict[str, Any] | None:
        """Call `operation` (boto3's snake_case name); None when AWS answers a code in `absent`."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client
        try:
            return getattr(client, operation)(**params)
        except ClientError as exc:
            if self.error_code(exc) in absent:
                return None
            raise self._translate(exc, what) from None
        except BotoCoreError as exc:
            raise self._translate(exc, what) from None

    def pages(
        self,
        operation: str,
        what: str,
        *,
        absent: Collection[str] = (),
        on_absent: Callable[[], None] | None = None,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every page of a paginated `operation`; a code in `absent` ends it (after `on_absent`)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client
        try:
            yield from client.get_paginator(operation).paginate(**params)
        except ClientError as exc:
            if self.error_code(exc) in absent:
                if on_absent is not None:
                    on_absent()
                return
            raise self._translate(exc, what) from None
        except BotoCoreError as exc:
            raise self._translate(exc, what) from None

    def close(self) -> None:
        """Close the client's connections; a later call makes a new client."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


class AwsDatabase(Database):
    """The life of every AWS backend: its settings checked (`_prepare`), then one `AwsClient`
    for the service the backend is named after; `environ` stands in for `os.environ` (tests)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the backend reads (`os.environ` unless one was given)."""
        return os.environ if self._environ is None else self._environ

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        self._prepare(self.environ)
        self._aws = AwsClient(self.name, self.name, self.options, self.environ)

    def _prepare(self, environ: Mapping[str, str]) -> None:
        """Check and apply the backend's own settings, before the AWS client is set up."""

    def close(self) -> None:
        aws = getattr(self, "_aws", None)
        if aws is not None:
            aws.close()
