"""Configuration: one TOML file in the home (shoal.toml), every key with a documented default
(docs/configuration.md); ``overrides`` ("section.key" -> value) win over the file."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from engine.errors import InvalidArgument
from journal.journal import JournalOptions

WRITERS = ("process", "thread")


@dataclass
class Config:
    journal: JournalOptions = field(default_factory=JournalOptions)
    block_size: int = 4 * 1024 * 1024
    # Seconds after which a loaded directory of a mount is listed again; -1 never, 0 always.
    ufs_sync_interval: float = -1.0


def _coerce(current: Any, value: Any, key: str) -> Any:
    if isinstance(value, str) and not isinstance(current, str):
        try:
            if isinstance(current, bool):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return type(current)(value)
        except ValueError:
            raise InvalidArgument(f"config key {key}: {value!r} is not a valid value") from None
    return value


def load_config(home: str, overrides: dict[str, Any] | None = None) -> Config:
    cfg = Config()
    data: dict[str, Any] = {}
    path = os.path.join(home, "shoal.toml")
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"{path}: not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    flat.update(overrides or {})
    journal_keys = {f.name for f in fields(JournalOptions)}
    for key, value in flat.items():
        section, _, name = key.rpartition(".")
        if section == "journal" and name in journal_keys:
            setattr(cfg.journal, name, _coerce(getattr(cfg.journal, name), value, key))
        elif not section and name == "block_size":
            cfg.block_size = _coerce(cfg.block_size, value, key)
        elif section == "ufs" and name == "sync_interval":
            cfg.ufs_sync_interval = float(_coerce(cfg.ufs_sync_interval, value, key))
        else:
            raise InvalidArgument(f"unknown config key {key!r}")
    if cfg.journal.writer not in WRITERS:
        raise InvalidArgument(
            f"config key journal.writer: {cfg.journal.writer!r} is not one of {', '.join(WRITERS)}"
        )
    return cfg
