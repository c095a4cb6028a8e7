"""Secrets of mounts (access keys, secret keys, session tokens): where they come from, where
they may be kept, and where they must never be.

A secret reaches a mount in one of these ways (docs/configuration.md, "Credentials"):

* by reference: ``<key>_file=PATH`` (a file only its owner can read, mode 0600 or narrower),
  or an S3 ``profile`` (the shared credentials file); the home keeps the reference, never the
  secret, and the file is read again each time the store is opened (keys can be rotated);
* by value: ``<key>=VALUE`` (on the command line: other users see it in ``ps``), ``<key>=-``
  (standard input), or the AWS_* variables of the command's environment. A daemon keeps these
  in memory only; ``shoal fs mount``, which records a mount for processes to come, keeps them
  in ``<home>/credentials`` (mode 0600, JSON: name -> {option: value}).

The journal's mount entries refer to a credentials entry by name only, so no secret ever
reaches the journal, a checkpoint, a dump or a log line; a daemon passes none in its argv or
environment (cli/daemon_cmds.py hands them over through a pipe). The file is replaced
atomically (temporary file created 0600, fsync, rename, directory fsync).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterable, Mapping

from engine.errors import InvalidArgument
from ufs.atomic import write_atomically

CREDENTIALS_FILE = "credentials"
SECRET_KEYS = frozenset({"access_key", "secret_key", "session_token", "password", "token"})
# Azure Blob's (ufs/azureoptions.py): an account key, a SAS token, a connection string (which
# holds a key or a SAS).
SECRET_KEYS |= {"account_key", "sas_token", "connection_string"}
FILE_SUFFIX = "_file"  # secret_key_file=PATH: the secret is that file's content
# Google Cloud Storage's (ufs/gcsclient.py): a service account's JSON key, a file of many lines,
# kept as its JSON on one line.
JSON_KEYS = frozenset({"service_account"})
SECRET_KEYS |= JSON_KEYS
# Given on a command line these warn: an access key id names a key but does not unlock it.
UNLOCKING_KEYS = SECRET_KEYS - {"access_key"}
# The variables boto3 would take secrets from; a daemon's environment never holds them.
ENV_SECRETS = {
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_SECURITY_TOKEN": "session_token",  # boto's older name for the same
}


def is_secret_option(key: str) -> bool:
    """A secret, or a reference to a file holding one."""
    return key in SECRET_KEYS or (
        key.endswith(FILE_SUFFIX) and key[: -len(FILE_SUFFIX)] in SECRET_KEYS
    )


def split_secrets(options: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(options safe to journal, secrets and references to them)."""
    public = {k: v for k, v in options.items() if not is_secret_option(k)}
    hidden = {k: v for k, v in options.items() if is_secret_option(k)}
    return public, hidden


def holds_values(hidden: Mapping[str, str]) -> bool:
    """Whether ``hidden`` holds a secret itself (not only references and an access key id)."""
    return any(k in UNLOCKING_KEYS for k in hidden)


def read_secret_file(path: str, key: str) -> str:
    """The secret in file ``path`` (its one line; a final newline is not part of it). Refused
    unless only its owner may read it: a secret other users can read is no secret."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidArgument(f"{key}{FILE_SUFFIX} {path}: {exc.strerror}") from None
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{key}{FILE_SUFFIX} {path} is not a regular file")
        if st.st_mode & 0o077:
            raise InvalidArgument(
                f"{key}{FILE_SUFFIX} {path} is mode {stat.S_IMODE(st.st_mode):04o}: other users"
                f" can read it; make it its owner's only (chmod 600 {path}) and mount again"
            )
        raw = f.read(1 << 16)
    text = raw.decode("utf-8", errors="strict").rstrip("\r\n")
    if key in JSON_KEYS:
        text = _one_line_json(text, path, key)
    if not text or "\n" in text:
        raise InvalidArgument(
            f"{key}{FILE_SUFFIX} {path} must hold the {key} on one line"
            + (" (it is empty)" if not text else "")
        )
    return text


def _one_line_json(text: str, path: str, key: str) -> str:
    """A JSON document's text on one line (a service account's key file has many)."""
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except ValueError:  # never the content in the message: it is a secret
        raise InvalidArgument(f"{key}{FILE_SUFFIX} {path} does not hold JSON") from None


def resolve(hidden: Mapping[str, str]) -> dict[str, str]:
    """``hidden`` with each ``<key>_file`` reference replaced by the secret it names (a value
    given for the key itself wins)."""
    out = {k: v for k, v in hidden.items() if k in SECRET_KEYS}
    for k, path in hidden.items():
        if k not in SECRET_KEYS:
            key = k[: -len(FILE_SUFFIX)]
            out.setdefault(key, read_secret_file(path, key))
    return out


def take_environment_secrets() -> dict[str, str]:
    """Removes the AWS_* secret variables from this process's environment (children no longer
    inherit them) and returns them as mount options."""
    found: dict[str, str] = {}
    for name, key in ENV_SECRETS.items():
        value = os.environ.pop(name, None)
        if value:
            found.setdefault(key, value)
    hide_in_process(found.values())
    return found


def hide_in_process(values: Iterable[str]) -> None:
    """Overwrites ``values`` in the memory the kernel shows as this process's command line and
    initial environment (/proc/PID/cmdline, /proc/PID/environ, ``ps``), as database clients do
    with a password given as an argument. Python works on copies of both, so nothing of its own
    changes. Best effort: where /proc cannot be written, the values stay shown."""
    wanted = [v.encode() for v in values if len(v) >= 8]  # short ones could hit anything
    if not wanted:
        return
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # Fields 48-51 of proc(5) (arg_start, arg_end, env_start, env_end); 3 is the first
        # after the command's name.
        blocks = [(int(fields[45]), int(fields[46])), (int(fields[47]), int(fields[48]))]
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            for start, end in blocks:
                if not 0 < start < end:
                    continue
                mem.seek(start)
                block = mem.read(end - start)
                for value in wanted:
                    at = block.find(value)
                    while at >= 0:
                        mem.seek(start + at)
                        mem.write(b"*" * len(value))
                        at = block.find(value, at + len(value))
    except (OSError, ValueError, IndexError):
        pass


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
