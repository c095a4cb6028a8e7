"""Secrets of mounts (access keys, secret keys, session tokens): the only place they are kept.

They live in one file, ``<home>/credentials`` (mode 0600, JSON: name -> {option: value}), and
the journal's mount entries refer to them by name only, so no secret ever reaches the journal,
a checkpoint, a dump or a log line. The file is replaced atomically (temporary file created
0600, fsync, rename, directory fsync).
"""

from __future__ import annotations

import json
import os
import secrets

from engine.errors import InvalidArgument
from ufs.atomic import write_atomically

CREDENTIALS_FILE = "credentials"
SECRET_KEYS = frozenset({"access_key", "secret_key", "session_token", "password", "token"})


def split_secrets(options: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(options safe to journal, secrets)."""
    public = {k: v for k, v in options.items() if k not in SECRET_KEYS}
    hidden = {k: v for k, v in options.items() if k in SECRET_KEYS}
    return public, hidden


class CredentialStore:
    def __init__(self, home: str | None) -> None:
        # No home (an engine on simulated storage): there is nowhere safe to keep secrets.
        self.path = os.path.join(home, CREDENTIALS_FILE) if home else ""

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path:
            raise InvalidArgument("this engine has no home directory to keep credentials in")
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{self.path} is not a JSON object")
        return data

    def get(self, name: str) -> dict[str, str] | None:
        return self._load().get(name)

    def add(self, values: dict[str, str]) -> str:
        """Stores ``values`` under a new name and returns it."""
        data = self._load()
        name = f"cred-{secrets.token_hex(6)}"
        data[name] = values
        self._save(data)
        return name

    def remove(self, name: str) -> None:
        data = self._load()
        if data.pop(name, None) is not None:
            self._save(data)

    def _save(self, data: dict[str, dict[str, str]]) -> None:
        payload = json.dumps(data, indent=1, sort_keys=True).encode()
        write_atomically(self.path, [payload], temp_prefix=f"{CREDENTIALS_FILE}.tmp-", mode=0o600)
