"""S3's errors as UfsErrors: botocore's client errors, connection failures and timeouts (after
its retries), a key that is not UTF-8 and missing credentials, each with what to fix."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions

from ufs.errors import (
    UfsAccessDenied,
    UfsBucketMissing,
    UfsError,
    UfsInvalidName,
    UfsNotFound,
    UfsUnavailable,
)
from ufs.s3options import S3Options

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {
    "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "AllAccessDisabled",
}  # fmt: skip


@contextmanager
def s3_errors(uri: str, bucket: str, options: S3Options, rel: str) -> Iterator[None]:
    """What a botocore call below it raises, as the UfsError saying what to fix (naming the
    path, the bucket, the endpoint and the attempts made)."""
    where = f"{uri}: {rel or '/'}"
    try:
        yield
    except UfsError:
        raise
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        message = error.get("Message") or code
        if code == "NoSuchBucket":
            raise UfsBucketMissing(
                f"{uri}: bucket {bucket!r} does not exist at"
                f" {options.endpoint or 'AWS'}; create it or fix the URI"
            ) from None
        if code in _DENIED or status == "403":
            raise UfsAccessDenied(
                f"{where}: access denied ({code}); check the credentials (access_key,"
                " secret_key, session_token or profile) and the bucket policy"
            ) from None
        if code in NOT_FOUND or status == "404":
            raise UfsNotFound(f"{where}: no such file or directory") from None
        if code == "InvalidRange":
            raise UfsNotFound(f"{where}: range not satisfiable") from None
        if status.startswith("5") or code in ("SlowDown", "Throttling", "RequestTimeout"):
            raise UfsUnavailable(
                f"{where}: the store kept failing after {options.max_attempts}"
                f" attempts ({code or status}: {message})"
            ) from None
        raise UfsError(f"{where}: {code or status}: {message}") from None
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ConnectionClosedError,
    ) as exc:
        raise UfsUnavailable(
            f"{where}: endpoint {options.endpoint or 'AWS'} unreachable after"
            f" {options.max_attempts} attempts ({type(exc).__name__})"
        ) from None
    except UnicodeEncodeError:  # a key that is not UTF-8: no object can have it
        raise UfsInvalidName(f"{where!r}: S3 keys are UTF-8") from None
    except botocore.exceptions.NoCredentialsError:
        raise UfsAccessDenied(
            f"{where}: no credentials: give access_key and secret_key, a profile, or"
            " set them in the environment"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise UfsError(f"{where}: {exc}") from None
    except OSError as exc:  # a socket botocore did not wrap, or a write's source failed
        network = isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno in (
            errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
        )  # fmt: skip
        cls = UfsUnavailable if network else UfsError
        raise cls(f"{where}: {exc.strerror or exc}") from exc
