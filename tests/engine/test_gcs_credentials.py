"""A GCS service account's JSON key is a secret like S3's secret key: kept out of the journal's
mount options, given by a 0600 file that may hold many lines (the key file the Cloud console
makes), resolved to its JSON on one line for the credentials file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.credentials import is_secret_option, resolve, split_secrets
from engine.errors import InvalidArgument

KEY = {"type": "service_account", "project_id": "p", "private_key": "-----BEGIN X-----\nabc\n"}


def test_a_service_account_key_file_of_many_lines_is_a_secret_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(KEY, indent=2) + "\n")
    os.chmod(path, 0o600)
    options = {"endpoint": "http://127.0.0.1:1", "service_account_file": str(path)}
    public, hidden = split_secrets(options)
    assert public == {"endpoint": "http://127.0.0.1:1"}
    assert is_secret_option("service_account") and is_secret_option("service_account_file")
    resolved = resolve(hidden)
    assert "\n" not in resolved["service_account"].replace("\\n", "")
    assert json.loads(resolved["service_account"]) == KEY
    os.chmod(path, 0o644)
    with pytest.raises(InvalidArgument, match="other users can read it"):
        resolve(hidden)
    path.write_text("not json, and secret-ish")
    os.chmod(path, 0o600)
    with pytest.raises(InvalidArgument, match="does not hold JSON") as err:
        resolve(hidden)
    assert "secret-ish" not in str(err.value)
