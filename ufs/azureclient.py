"""The SDK client of an Azure Blob mount, from its options and credentials.

Credentials, first found wins: a ``connection_string``; ``account`` with its ``account_key``;
a ``sas_token``; else the SDK's default chain (azure-identity's DefaultAzureCredential: a
managed identity, the environment's service principal, ``az login``), which is an optional
dependency. Retries are the SDK's own ExponentialRetry: on 408, 5xx (not 501/505), throttling
(503 ServerBusy), connection errors and timeouts, up to ``max_attempts`` in all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.storage.blob import BlobServiceClient, ExponentialRetry

from ufs.azureoptions import AzureOptions
from ufs.errors import UfsAccessDenied, UfsError


def account_url(options: AzureOptions) -> str:
    if options.endpoint:
        return options.endpoint.rstrip("/")
    if not options.account:
        raise UfsError(
            "Azure mount: no account; give -o account=NAME (or -o endpoint=URL, or a"
            " connection_string)"
        )
    return f"https://{options.account}.blob.core.windows.net"


def service_client(options: AzureOptions, credentials: Mapping[str, str]) -> BlobServiceClient:
    """A client of the account, not yet checked (no request is sent)."""
    settings: dict[str, Any] = {
        "retry_policy": ExponentialRetry(
            initial_backoff=options.retry_backoff_s,  # type: ignore[arg-type]
            increment_base=options.retry_base,  # type: ignore[arg-type]
            retry_total=options.max_attempts - 1,
            random_jitter_range=options.retry_backoff_s / 2,  # type: ignore[arg-type]
        ),
        "connection_timeout": options.connect_timeout_s,
        "read_timeout": options.read_timeout_s,
        "max_single_get_size": options.read_chunk,
        "max_chunk_get_size": options.read_chunk,
    }
    if credentials.get("connection_string"):
        try:
            return BlobServiceClient.from_connection_string(
                credentials["connection_string"], **settings
            )
        except ValueError:  # its message may quote the string, which holds the key
            raise UfsError(
                "Azure mount: connection_string is not a valid connection string"
            ) from None
    url = account_url(options)
    if credentials.get("account_key"):
        if not options.account:
            raise UfsError("Azure mount: account_key needs -o account=NAME (the account's name)")
        key = {"account_name": options.account, "account_key": credentials["account_key"]}
        return BlobServiceClient(url, credential=key, **settings)
    if credentials.get("sas_token"):
        return BlobServiceClient(url, credential=credentials["sas_token"].lstrip("?"), **settings)
    return BlobServiceClient(url, credential=default_credential(), **settings)


def default_credential() -> Any:
    """azure-identity's default chain; a clear error where it is not installed."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise UfsAccessDenied(
            "Azure mount: no account_key, sas_token or connection_string was given, and the"
            " default credential chain needs the azure-identity package (pip install"
            " azure-identity)"
        ) from None
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)
