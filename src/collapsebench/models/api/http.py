"""What every provider module shares: the retry policy, the error types, one httpx client, capped downloads.

A paid API fails in a few known ways, and each has one answer here so that the four providers behave alike:
429, 5xx and timeouts are retried with exponential backoff and full jitter, honouring `Retry-After` (seconds or an
HTTP date), up to `RetryPolicy.attempts` tries in all; 401/403 mean the key is wrong and stop the whole run; any
other 4xx is this job's error. No message built here ever contains the key: `redact` removes it from every text
that leaves a provider module, whatever a library or server put in it.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar

import httpx

from collapsebench.core.errors import BenchError

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one job: params.yaml `generate.api` (defaults below)."""

    attempts: int = 5  # tries in all, the first included; then the job is recorded as an error
    backoff_s: float = 2.0  # the n-th retry waits up to backoff_s * 2**(n-1) (full jitter)
    max_backoff_s: float = 60.0  # and never longer, nor longer than this for a Retry-After
    timeout_s: float = 180.0  # one HTTP request
    poll_interval_s: float = 1.0  # asynchronous providers (BFL): between two polls
    poll_timeout_s: float = 600.0  # and at most this long per job

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> RetryPolicy:
        values = dict(params or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise BenchError(f"generate.api: unknown setting(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        policy = cls(**values)
        if policy.attempts < 1 or min(policy.backoff_s, policy.max_backoff_s, policy.timeout_s,
                                      policy.poll_interval_s, policy.poll_timeout_s) < 0:
            raise BenchError(f"generate.api: attempts must be >= 1 and every duration >= 0, got {values}")
        return policy

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before retry number `retry` (1-based): the server's Retry-After when it gave one, else jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        return rng.uniform(0.0, min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s))


class ProviderError(Exception):
    """This job failed (recorded as `error`); the message says why, never with the key."""


class Retryable(ProviderError):
    """A failure worth another try (429, 5xx, timeout, lost connection)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """The provider answered with a refusal (an answer, not a failure): raised from inside a retry loop."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class KeyRejected(BenchError):
    """The provider refused the key (401/403): every further request would fail the same way, so the run stops."""


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now(), 0.0)


def check_status(status: int, headers: Mapping[str, str], body: str, what: str) -> None:
    """Raise the right error for a non-2xx HTTP status (nothing for 2xx)."""
    if 200 <= status < 300:
        return
    detail = f"{what}: HTTP {status}: {body[:300]}"
    if status in AUTH_STATUSES:
        raise KeyRejected(f"{detail} (the provider rejected the key: check it and its permissions)")
    if status in RETRY_STATUSES or status >= 500:
        raise Retryable(detail, retry_after_seconds(headers.get("retry-after")))
    raise ProviderError(detail)


def with_retries(call: Callable[[], T], policy: RetryPolicy, label: str, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> T:
    """`call()` until it succeeds, a non-retryable error, or `policy.attempts` tries; then the last error, counted."""
    rng = rng or random.Random()
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Retryable as error:
            if attempt == policy.attempts:
                raise ProviderError(f"{label}: gave up after {policy.attempts} tries: {error}") from error
            sleep(policy.delay(attempt, error.retry_after, rng))
    raise AssertionError("unreachable")


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of the key replaced; a library's message may echo a header or a URL."""
    return text.replace(secret, "[key]") if secret else text


def http_client(policy: RetryPolicy) -> httpx.Client:
    """The one httpx client of the plain-HTTP providers (BFL, BytePlus): connection reuse across threads.

    Redirects are not followed: a redirect would carry the key header to a host nobody chose.
    """
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
    return httpx.Client(timeout=httpx.Timeout(policy.timeout_s), limits=limits, follow_redirects=False)


def send(client: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """One request; transport failures become Retryable, statuses are checked by `check_status`."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as error:
        raise Retryable(f"{what}: timed out ({type(error).__name__})") from None
    except httpx.TransportError as error:
        raise Retryable(f"{what}: connection failed ({type(error).__name__})") from None
    check_status(response.status_code, response.headers, response.text, what)
    return response


def json_body(response: httpx.Response, what: str) -> Any:
    """The response's JSON; a body that is not JSON is this job's error, with its first bytes shown."""
    try:
        return response.json()
    except ValueError:
        raise ProviderError(f"{what}: the answer is not valid JSON (starts with {response.content[:60]!r})") from None


def download(client: httpx.Client, url: str, max_bytes: int, what: str) -> bytes:
    """An answer image from its delivery URL (sent without the key), at most `max_bytes`, read as it streams.

    Result URLs are signed and expire (BFL's after minutes): 403, 404 and 410 from the delivery host say so.
    """
    try:
        with client.stream("GET", url) as response:
            if response.status_code in (403, 404, 410):
                raise ProviderError(f"{what}: the result URL answered HTTP {response.status_code}: it expired or was "
                                    "never valid (signed delivery URLs last minutes); the job is asked again next run")
            check_status(response.status_code, response.headers, "", what)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ProviderError(f"{what}: the answer image is {declared} bytes; at most {max_bytes} are accepted")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ProviderError(f"{what}: the answer image is over {max_bytes} bytes; not accepted")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException:
        raise Retryable(f"{what}: downloading the result timed out") from None
    except httpx.TransportError as error:
        raise Retryable(f"{what}: downloading the result failed ({type(error).__name__})") from None
