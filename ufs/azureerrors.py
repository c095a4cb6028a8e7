"""Azure Blob's errors as UfsErrors: the SDK's HTTP errors (after its retries), connection
failures and timeouts, a name that is not UTF-8 and refused credentials, each with what to fix
and never with a secret (the SDK's messages hold no key; a SAS is cut out of URLs it shows)."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ufs.errors import (
    UfsAccessDenied,
    UfsBucketMissing,
    UfsError,
    UfsExists,
    UfsInvalidName,
    UfsNotFound,
    UfsUnavailable,
)

NOT_FOUND = {"BlobNotFound", "ResourceNotFound"}
MISSING_CONTAINER = {"ContainerNotFound", "ContainerBeingDeleted"}
_BUSY = {"ServerBusy", "OperationTimedOut", "InternalError"}
_SIG = re.compile(r"([?&]sig=)[^&\s]+", re.IGNORECASE)


def code_of(exc: HttpResponseError) -> str:
    """The storage error code of ``exc`` (``BlobNotFound``), or its HTTP status."""
    code = getattr(exc, "error_code", None)  # set by the storage SDK on its errors
    text = getattr(code, "value", code)  # the SDK gives a StorageErrorCode or a str
    return str(text) if text else str(exc.status_code or "")


def clean(text: str) -> str:
    """``text`` without a SAS signature, and on one line."""
    return _SIG.sub(r"\1REDACTED", text).splitlines()[0] if text else text


@contextmanager
def azure_errors(
    uri: str, container: str, endpoint: str, attempts: int, rel: str
) -> Iterator[None]:
    """What an SDK call below it raises, as the UfsError saying what to fix (naming the path,
    the container, the endpoint and the attempts made)."""
    where = f"{uri}: {rel or '/'}"
    try:
        yield
    except UfsError:
        raise
    except HttpResponseError as exc:
        code, status = code_of(exc), exc.status_code or 0
        if code in MISSING_CONTAINER:
            raise UfsBucketMissing(
                f"{uri}: container {container!r} does not exist at {endpoint}; create it or"
                " fix the URI"
            ) from None
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            raise UfsAccessDenied(
                f"{where}: access denied ({code or 'no token'}); check the credentials"
                " (account and account_key, sas_token, connection_string, or the default"
                " chain's identity) and its rights on the container"
            ) from None
        if code in NOT_FOUND or status == 404:
            raise UfsNotFound(f"{where}: no such file or directory") from None
        if status == 409 and code == "BlobAlreadyExists":
            raise UfsExists(f"{where}: already exists") from None
        if status >= 500 or status in (408, 429) or code in _BUSY:
            raise UfsUnavailable(
                f"{where}: the store kept failing after {attempts} attempts"
                f" ({code}: {clean(exc.reason or '')})"
            ) from None
        raise UfsError(f"{where}: {code}: {clean(exc.reason or exc.message or '')}") from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise UfsUnavailable(
            f"{where}: endpoint {endpoint} unreachable after {attempts} attempts"
            f" ({type(exc).__name__})"
        ) from None
    except UnicodeEncodeError:  # a name that is not UTF-8: no blob can have it
        raise UfsInvalidName(f"{where!r}: Azure blob names are UTF-8") from None
    except AzureError as exc:
        raise UfsError(f"{where}: {clean(str(exc))}") from None
    except OSError as exc:  # a socket the SDK did not wrap, or a write's source failed
        network = isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno in (
            errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
        )  # fmt: skip
        cls = UfsUnavailable if network else UfsError
        raise cls(f"{where}: {exc.strerror or exc}") from exc
