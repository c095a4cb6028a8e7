"""GCS's errors as UfsErrors, and the retry policy of its requests.

Retries are google.api_core's ``Retry`` (exponential backoff with jitter), the client's own
mechanism, on what the storage client itself retries: 408, 429 and 5xx answers, connections
refused or dropped, timeouts. ``attempts`` bounds it to ``max_attempts`` tries (api_core's own
bound is a deadline only, kept too: ``retry_timeout_s``). What cannot succeed by retrying (a
missing bucket, refused credentials) fails at once with an error saying what to fix."""

from __future__ import annotations

import errno
import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import google.auth.exceptions
import requests
import urllib3.exceptions
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud.storage.exceptions import InvalidResponse

from ufs.errors import (
    UfsAccessDenied,
    UfsBucketMissing,
    UfsError,
    UfsInvalidName,
    UfsNotFound,
    UfsUnavailable,
)
from ufs.gcsoptions import GCSOptions

_TRANSIENT_ANSWERS = (
    gexc.TooManyRequests, gexc.InternalServerError, gexc.BadGateway, gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
)  # fmt: skip
_NETWORK = (
    ConnectionError, TimeoutError, http.client.HTTPException, requests.ConnectionError,
    requests.Timeout, requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError,
    google.auth.exceptions.TransportError,
)  # fmt: skip


def transient(exc: BaseException) -> bool:
    """Whether retrying may succeed: the storage client's own list of retryable failures."""
    if isinstance(exc, _TRANSIENT_ANSWERS + _NETWORK):
        return True
    if isinstance(exc, InvalidResponse):  # a media transfer's answer (not an API call's)
        code = getattr(exc.response, "status_code", None)
    else:
        code = getattr(exc, "code", None)
    return isinstance(code, int) and (code in (408, 429) or code >= 500)


def attempts(options: GCSOptions) -> Retry:
    """A Retry for one call: transient failures are retried until ``max_attempts`` tries were
    made (a new Retry per call: it counts the failures of that call only)."""
    failures = 0
    lock = threading.Lock()

    def predicate(exc: Exception) -> bool:
        nonlocal failures
        with lock:
            failures += 1
            return transient(exc) and failures < options.max_attempts

    return Retry(
        predicate=predicate, initial=0.05, maximum=2.0, multiplier=2.0,
        timeout=options.retry_timeout_s,
    )  # fmt: skip


@contextmanager
def gcs_errors(uri: str, bucket: str, options: GCSOptions, rel: str) -> Iterator[None]:
    """What a google-cloud-storage call below it raises, as the UfsError saying what to fix
    (naming the path, the bucket, the endpoint and the attempts made)."""
    where = f"{uri}: {rel or '/'}"
    endpoint = options.endpoint or "storage.googleapis.com"
    try:
        yield
    except UfsError:
        raise
    except gexc.RetryError as exc:  # api_core's deadline passed first
        raise UfsUnavailable(
            f"{where}: the store kept failing for {options.retry_timeout_s:g} s"
            f" ({type(exc.cause).__name__})"
        ) from None
    except (gexc.Unauthorized, gexc.Forbidden, google.auth.exceptions.RefreshError) as exc:
        raise UfsAccessDenied(
            f"{where}: access denied ({_reason(exc)}); check the credentials (service_account,"
            " the default chain's account) and the bucket's IAM policy"
        ) from None
    except gexc.NotFound as exc:
        if "bucket" in str(exc.message).lower():
            raise UfsBucketMissing(missing_bucket(uri, bucket, endpoint)) from None
        raise UfsNotFound(f"{where}: no such file or directory") from None
    except gexc.GoogleAPICallError as exc:
        if transient(exc):
            raise UfsUnavailable(
                f"{where}: the store kept failing after {options.max_attempts} attempts"
                f" ({exc.code}: {_reason(exc)})"
            ) from None
        raise UfsError(f"{where}: {exc.code}: {_reason(exc)}") from None
    except InvalidResponse as exc:  # a media transfer's answer
        status = getattr(exc.response, "status_code", "?")
        if transient(exc):
            raise UfsUnavailable(
                f"{where}: the store kept failing after {options.max_attempts} attempts ({status})"
            ) from None
        raise UfsError(f"{where}: the store answered {status}") from None
    except google.auth.exceptions.DefaultCredentialsError:
        raise UfsAccessDenied(
            f"{where}: no credentials: give -o service_account_file=PATH (a service account's"
            " JSON key, mode 0600), set up application default credentials, or -o anonymous=true"
        ) from None
    except _NETWORK as exc:
        raise UfsUnavailable(
            f"{where}: endpoint {endpoint} unreachable after {options.max_attempts} attempts"
            f" ({type(exc).__name__})"
        ) from None
    except UnicodeEncodeError:  # a name that is not UTF-8: no object can have it
        raise UfsInvalidName(f"{where!r}: GCS object names are UTF-8") from None
    except OSError as exc:  # a write's source failed, or a socket nothing wrapped
        network = exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN)
        cls = UfsUnavailable if network else UfsError
        raise cls(f"{where}: {exc.strerror or exc}") from exc
    except (gexc.GoogleAPIError, google.auth.exceptions.GoogleAuthError, ValueError) as exc:
        raise UfsError(f"{where}: {type(exc).__name__}: {exc}") from None


def missing_bucket(uri: str, bucket: str, endpoint: str) -> str:
    return f"{uri}: bucket {bucket!r} does not exist at {endpoint}; create it or fix the URI"


def _reason(exc: BaseException) -> str:
    """The answer's reason without the request's URL (which holds no secret, but is long)."""
    message = getattr(exc, "message", None) or str(exc)
    return str(message).split(": ", 1)[-1][:200] if " http" in str(message) else str(message)
