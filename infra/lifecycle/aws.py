"""AWS clients with throttling retries, and the 'already gone' rule shared by teardown and audit."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, InvalidRegionError
from botocore.utils import validate_region_name

# Standard-mode retries cover throttling on the wire; `call` adds an outer loop because a
# teardown that gives up half-way on a burst of throttling is worse than one that waits.
BOTOCORE_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"})

THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestThrottled", "SlowDown",
})
# Error codes meaning "the thing you asked about does not exist": success for a delete.
GONE_CODES = frozenset({
    "ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "NotFoundException",
    "ResourceNotFound", "ParameterNotFound",
    "NotFound",  # SNS, for a topic that does not exist
})

MARKER = ("marker", "nextMarker")  # the continuation token of IoT's policy lists (for `paginate`)


class LifecycleError(Exception):
    """A problem the user fixes (bad input, missing set-up, a refusal): one line, exit 2."""


def session_from_environment(environ: Mapping[str, str] = os.environ) -> boto3.session.Session:
    """A session in the region the CDK CLI would use: it honours AWS_REGION, which boto3 ignores
    (boto3 reads AWS_DEFAULT_REGION and the profile)."""
    region = environ.get("AWS_REGION")
    if region is not None and not region.strip():
        raise LifecycleError("AWS_REGION is set but empty: unset it, or set it to the region to work in "
                             "(for example AWS_REGION=eu-west-1)")
    return boto3.session.Session(region_name=region)


def require_region(region: str) -> None:
    if not region:
        raise LifecycleError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in your AWS profile)")
    try:
        validate_region_name(region)
    except InvalidRegionError:
        raise LifecycleError(f"{region!r} is not an AWS region name: set AWS_REGION to one such as eu-west-1") from None


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def is_gone(error: ClientError) -> bool:
    code = error_code(error)
    message = error.response.get("Error", {}).get("Message", "")
    # CloudFormation reports a missing stack as a ValidationError.
    return code in GONE_CODES or (code == "ValidationError" and "does not exist" in message)


def call(operation: Callable[..., Any], *, attempts: int = 6, base_delay_s: float = 0.5,
         retry_codes: frozenset[str] = frozenset(), **params: Any) -> Any:
    """Call one AWS operation, retrying throttling (and `retry_codes`, errors that pass by
    themselves) with exponential backoff (0.5 s, 1 s, ... 8 s)."""
    for attempt in range(1, attempts + 1):
        try:
            return operation(**params)
        except ClientError as error:
            if error_code(error) not in THROTTLING_CODES | retry_codes or attempt == attempts:
                raise
            time.sleep(base_delay_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable: the loop returns or raises")


def call_unless_gone(operation: Callable[..., Any], **params: Any) -> Any | None:
    """The operation's response, or None when the resource it names does not exist."""
    try:
        return call(operation, **params)
    except ClientError as error:
        if is_gone(error):
            return None
        raise


def exists(describe: Callable[..., Any], **params: Any) -> bool:
    return call_unless_gone(describe, **params) is not None


def delete_if_present(delete: Callable[..., Any], **params: Any) -> bool:
    """True when the call removed something, False when it was already gone."""
    return call_unless_gone(delete, **params) is not None


def paginate(operation: Callable[..., Any], result_key: str, *,
             token: tuple[str, str] = ("nextToken", "nextToken"), **params: Any) -> list[Any]:
    """All items of a paginated list call, each page fetched with throttling retries.

    `token` names the request and response fields of the continuation token (they differ by API).
    """
    token_in, token_out = token
    items: list[Any] = []
    while True:
        page = call(operation, **params)
        items.extend(page.get(result_key, []))
        next_token = page.get(token_out)
        if not next_token:
            return items
        params = {**params, token_in: next_token}


@dataclass
class AwsClients:
    """Lazily created clients of one session; tests hand in a moto-backed session and may
    pre-set a client (the Stubber-wrapped greengrassv2 one)."""

    session: boto3.session.Session
    overrides: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("session", "overrides"):
            raise AttributeError(name)
        service = name.rstrip("_").replace("_", "-")  # lambda_ -> lambda
        if name in self.overrides:
            return self.overrides[name]
        if name not in self._cache:
            self._cache[name] = self._create(service)
        return self._cache[name]

    @property
    def region(self) -> str:
        return self.session.region_name or ""

    def _create(self, service: str) -> Any:
        # iot-data defaults to the region's data-ats endpoint, which serves every account's shadows.
        try:
            return self.session.client(service, config=BOTOCORE_CONFIG)
        except ValueError as error:  # botocore's answer to an endpoint URL it cannot use ("Invalid endpoint: ...")
            raise LifecycleError(f"cannot make the AWS {service} client ({error}): fix or unset AWS_ENDPOINT_URL "
                                 "(or AWS_ENDPOINT_URL_<SERVICE>, or endpoint_url in your AWS config)") from None
