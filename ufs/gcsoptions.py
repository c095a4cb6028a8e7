"""A Google Cloud Storage mount's options: parsed from the mount's strings, each named in its
error (docs/ufs.md, "Google Cloud Storage")."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ufs.errors import UfsError
from ufs.storeoptions import check_endpoint, typed_values

# The service account's JSON key (its content; ``service_account_file=PATH`` names a file of
# mode 0600 holding it): kept like S3's secret key, only in the home's credentials file.
SECRET_OPTIONS = frozenset({"service_account"})
CHUNK_MULTIPLE = 256 << 10  # GCS takes resumable-upload chunks in multiples of 256 KiB


@dataclass(frozen=True)
class GCSOptions:
    # An emulator's (or a private endpoint's) URL, e.g. http://127.0.0.1:9023: set in the
    # client object (STORAGE_EMULATOR_HOST's meaning, never the daemon's environment); without
    # a service account it is spoken to anonymously. None: storage.googleapis.com.
    endpoint: str | None = None
    project: str | None = None  # None: the credentials' own (or "shoal" for an emulator)
    anonymous: bool = False  # public buckets: no credentials at all
    max_attempts: int = 5  # per request, first try included (google.api_core's Retry)
    retry_timeout_s: float = 60.0  # the most a request's retries take, all attempts together
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    pool_size: int = 32  # threads asking a listing's directory markers for their metadata
    resumable_threshold: int = 8 << 20  # a write above this is a resumable upload
    resumable_chunk: int = 16 << 20  # bytes per request of a resumable upload
    page_size: int = 1000  # objects per LIST request
    posix_metadata: bool = True  # a listing GETs each directory marker for its attributes

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> GCSOptions:
        """From mount options (strings); unknown keys are an error naming the key."""
        values = typed_values(cls, options, "GCS", SECRET_OPTIONS, unknown_option)
        out = cls(**values)
        out.check()
        return out

    def check(self) -> None:
        check_endpoint("GCS", self.endpoint)
        if self.resumable_chunk <= 0 or self.resumable_chunk % CHUNK_MULTIPLE:
            raise UfsError(
                f"GCS mount option resumable_chunk: {self.resumable_chunk} is not a positive"
                " multiple of 262144 (256 KiB), as GCS requires"
            )
        if self.max_attempts < 1:
            raise UfsError(f"GCS mount option max_attempts: {self.max_attempts} is below 1")


def option_names() -> list[str]:
    """Every GCS mount option, secrets included, as a user writes them after -o."""
    return sorted({f.name for f in fields(GCSOptions)} | SECRET_OPTIONS)


def unknown_option(key: str) -> str:
    """The message for a key that is no GCS option: the nearest one, and all of them."""
    names = option_names()
    near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown GCS mount option {key!r}{hint}; the GCS options are: {', '.join(names)}"
