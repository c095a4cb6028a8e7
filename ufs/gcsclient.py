"""The google-cloud-storage client of a GCS mount and its credentials.

Credentials, in order: a service account's JSON key given as the ``service_account`` secret
(its content: the home keeps it in its 0600 credentials file, or the path of a 0600 file),
none with ``anonymous`` or an ``endpoint`` (an emulator), else google.auth's default chain
(GOOGLE_APPLICATION_CREDENTIALS, gcloud's application default credentials, the metadata
server). An endpoint is set in the client object (``api_endpoint``), never in the process's
environment: the daemon's other mounts are not redirected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import google.auth
import requests.adapters
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.oauth2 import service_account

from ufs.errors import UfsAccessDenied
from ufs.gcsoptions import GCSOptions

SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
EMULATOR_PROJECT = "shoal"  # an emulator asks for no real project


def credentials_for(
    options: GCSOptions, secrets: Mapping[str, str]
) -> tuple[Credentials, str | None]:
    """(the credentials, their project) a mount with ``options`` and ``secrets`` uses."""
    key = secrets.get("service_account")
    if key:
        try:
            info = json.loads(key)
            creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        except (ValueError, KeyError) as exc:  # never the key itself in the message
            raise UfsAccessDenied(
                f"service_account: not a service account's JSON key ({type(exc).__name__});"
                " give the file the Cloud console made (IAM, Service accounts, Keys)"
            ) from None
        return creds, info.get("project_id")
    if options.anonymous or options.endpoint:
        return AnonymousCredentials(), EMULATOR_PROJECT
    creds, project = google.auth.default(scopes=SCOPES)
    return creds, project


def make_client(
    options: GCSOptions, secrets: Mapping[str, str]
) -> tuple[storage.Client, AuthorizedSession]:
    """The storage client, and a session on the same credentials for streamed media reads
    (the client reads a range whole; a stream hands its first bytes on as they arrive)."""
    creds, project = credentials_for(options, secrets)
    client_options: dict[str, Any] = {}
    if options.endpoint:
        client_options["api_endpoint"] = options.endpoint.rstrip("/")
    client = storage.Client(
        project=options.project or project or EMULATOR_PROJECT,
        credentials=creds,
        client_options=client_options,
    )
    session = AuthorizedSession(creds)
    # One connection per parallel reader, as S3's pool_size gives (requests keeps 10).
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return client, session
