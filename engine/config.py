"""Configuration: one TOML file in the home (shoal.toml), every key with a documented default
(docs/configuration.md); ``overrides`` ("section.key" -> value) win over the file."""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from engine.cache.eviction import EVICTORS
from engine.cache.fetch import READ_DEADLINE_S
from engine.cache.tiers import TierSpec
from engine.errors import InvalidArgument
from journal.journal import JournalOptions

WRITERS = ("process", "thread")
REPLAY_SCANNERS = ("auto", "process", "inline")
DURABILITIES = ("commit_interval", "every_op")
# Directory prefetch's defaults (docs/configuration.md: chosen from `shoal bench read` figures)
PREFETCH_THREADS = 32  # fetches under way at once
PREFETCH_DIR_LIMIT = 10_000  # files of one directory fetched at most
PREFETCH_WATERMARK = 0.9  # the share of a tier's quota prefetch may fill


@dataclass
class Config:
    journal: JournalOptions = field(default_factory=JournalOptions)
    block_size: int = 4 * 1024 * 1024
    # Seconds after which a loaded directory of a mount is listed again; -1 never, 0 always.
    ufs_sync_interval: float = -1.0
    # Seconds a read that reaches a UFS may take in all, every retry included (EIO after).
    ufs_read_deadline_s: float = READ_DEADLINE_S
    # How file writes below a mount become durable (docs/cache.md); a mount may override it.
    write_type: str = "THROUGH"
    # How reads use the cache: CACHE, CACHE_PROMOTE or NO_CACHE; a mount may override it.
    read_type: str = "CACHE"
    cache_evictor: str = "LRU"  # or LRFU
    cache_lrfu_half_life_s: float = 300.0
    cache_ttl_check_interval_s: float = 60.0  # how often the daemon acts on expired TTLs
    cache_readahead_blocks: int = 2  # blocks fetched ahead of a sequential reader; 0: none
    cache_readahead_max_blocks: int = 8  # how far that window grows for a long stream
    # Directory prefetch (engine/prefetch.py): threads fetching a directory's other files
    # after a reader's first miss in it (0: off), files per directory, and the share of a
    # tier's quota it may fill (it never evicts).
    cache_prefetch_threads: int = PREFETCH_THREADS
    cache_prefetch_dir_limit: int = PREFETCH_DIR_LIMIT
    cache_prefetch_watermark: float = PREFETCH_WATERMARK
    # The block cache's tiers, highest first; None: the defaults of default_tiers(home).
    cache_tiers: list[TierSpec] | None = None
    # Volatile tiers (sync = false: MEM on /dev/shm) outlive the daemon as RAM nobody frees; by
    # default the daemon's stop (and an offline command's end) moves their blocks to a disk
    # tier and removes them (engine/cache/release.py). True keeps them for the next start.
    cache_keep_volatile_tiers: bool = False
    # How long the kernel may trust a name (entry) or attributes it was given, in seconds.
    # Long: training data is read-mostly, and changes made through the mount reach the
    # kernel with the replies that make them.
    fuse_entry_timeout_s: float = 300.0
    fuse_attr_timeout_s: float = 300.0
    fuse_allow_other: bool = False  # other users may use the mount (permissions are checked)
    # Largest file the mount lets a write or truncate make (EFBIG above): a file's content
    # reaches the UFS whole, zeros of a sparse tail included.
    fuse_max_file_size: int = 1 << 40
    fuse_max_threads: int = 16
    # close(2) returns once written data is durable (as the write type says). False turns the
    # kernel's FLUSH off: faster closes, and only fsync acknowledges written data.
    fuse_flush_on_close: bool = True  # blocking work (UFS, misses, fsync waits) at once
    # Extended attributes through the mount. They cost every write(2) a round trip (the kernel
    # asks for security.capability first); False answers ENOSYS once, and the kernel stops.
    fuse_xattrs: bool = True
    # Reads move access times as Linux's relatime does (an entry for a file's first read after
    # a change, or once a day); False: noatime, reads never do.
    fuse_relatime: bool = True
    log_level: str = "INFO"
    # Prometheus metrics on 127.0.0.1:<port> (/metrics); 0 serves none (and measures nothing).
    metrics_port: int = 0  # of the daemon's log file, <home>/logs/shoal.log
    # A cluster client on a worker's host reads that worker's tier files directly.
    cluster_short_circuit: bool = True


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}  # fmt: skip


def parse_size(value: Any, key: str) -> int:
    """Bytes from 123, "123", "64MiB", "1.5GiB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    unit = text[len(number) :]
    try:
        return int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        raise InvalidArgument(f"config key {key}: {value!r} is not a size (e.g. 512MiB)") from None


def default_tiers(home: str) -> list[TierSpec]:
    """MEM on /dev/shm (1 GiB) when there is one, then SSD in the home (16 GiB)."""
    tiers = []
    if os.path.isdir("/dev/shm"):
        tag = hashlib.sha1(os.path.abspath(home).encode()).hexdigest()[:12]
        tiers.append(TierSpec("MEM", [f"/dev/shm/shoal-{tag}"], 1 << 30, sync=False))
    tiers.append(TierSpec("SSD", [os.path.join(home, "cache")], 16 << 30, sync=True))
    return tiers


def _tiers(value: Any, key: str) -> list[TierSpec]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise InvalidArgument(f"config key {key}: write each tier as a [[cache.tiers]] table")
    out = []
    for i, t in enumerate(value):
        unknown = set(t) - {"name", "paths", "quota", "sync"}
        if unknown or "name" not in t or "paths" not in t or "quota" not in t:
            raise InvalidArgument(
                f"config key {key}[{i}]: a tier has name, paths, quota (and sync);"
                f" got {', '.join(sorted(t))}"
            )
        paths = [t["paths"]] if isinstance(t["paths"], str) else list(t["paths"])
        quota = parse_size(t["quota"], f"{key}[{i}].quota")
        out.append(TierSpec(str(t["name"]), paths, quota, bool(t.get("sync", t["name"] != "MEM"))))
    return out


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


def load_config(
    home: str, overrides: dict[str, Any] | None = None, path: str | None = None
) -> Config:
    """The home's shoal.toml (or the file ``path``, which must exist), then ``overrides``."""
    cfg = Config()
    if path is not None and not os.path.isfile(path):
        raise InvalidArgument(f"config file {path} does not exist")
    flat = _read_flat(path or os.path.join(home, "shoal.toml"))
    flat.update(overrides or {})
    for key, value in flat.items():
        _set_key(cfg, key, value)
    _check_journal(cfg.journal)
    return cfg


def _read_flat(path: str) -> dict[str, Any]:
    """The TOML file's keys as "section.key" -> value (none when there is no file)."""
    data: dict[str, Any] = {}
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
    return flat


_JOURNAL_KEYS = frozenset(f.name for f in fields(JournalOptions))


def _set_key(cfg: Config, key: str, value: Any) -> None:
    section, _, name = key.rpartition(".")
    if section == "journal" and name in _JOURNAL_KEYS:
        setattr(cfg.journal, name, _coerce(getattr(cfg.journal, name), value, key))
    elif not section and name == "block_size":
        cfg.block_size = _coerce(cfg.block_size, value, key)
    elif not section and name == "write_type":
        cfg.write_type = str(value).upper()
    elif not section and name == "read_type":
        cfg.read_type = str(value).upper()
    elif section == "cache" and name == "evictor":
        cfg.cache_evictor = str(value).upper()
        if cfg.cache_evictor not in EVICTORS:
            choices = " or ".join(EVICTORS)
            raise InvalidArgument(f"config key {key}: {value!r} is not {choices}")
    elif section == "cache" and name == "readahead_blocks":
        cfg.cache_readahead_blocks = int(_coerce(cfg.cache_readahead_blocks, value, key))
    elif section == "cache" and name == "readahead_max_blocks":
        cfg.cache_readahead_max_blocks = int(_coerce(0, value, key))
    elif section == "cache" and name.startswith("prefetch_"):
        _set_prefetch(cfg, name, value, key)
    elif section == "cache" and name == "ttl_check_interval_s":
        cfg.cache_ttl_check_interval_s = float(_coerce(cfg.cache_ttl_check_interval_s, value, key))
    elif section == "cache" and name == "lrfu_half_life_s":
        cfg.cache_lrfu_half_life_s = float(_coerce(cfg.cache_lrfu_half_life_s, value, key))
    elif section == "cache" and name == "keep_volatile_tiers":
        cfg.cache_keep_volatile_tiers = _coerce(False, value, key)
    elif section == "cache" and name == "tiers":
        cfg.cache_tiers = _tiers(value, key)
    elif section == "fuse" and name in ("entry_timeout_s", "attr_timeout_s"):
        setattr(cfg, f"fuse_{name}", float(_coerce(0.0, value, key)))
    elif section == "fuse" and name in ("allow_other", "flush_on_close", "xattrs", "relatime"):
        setattr(cfg, f"fuse_{name}", _coerce(False, value, key))
    elif section == "fuse" and name == "max_file_size":
        cfg.fuse_max_file_size = parse_size(value, key)
    elif section == "fuse" and name == "max_threads":
        cfg.fuse_max_threads = max(1, int(_coerce(0, value, key)))
    elif section == "metrics" and name == "port":
        cfg.metrics_port = int(_coerce(0, value, key))
        if not 0 <= cfg.metrics_port < 65536:
            raise InvalidArgument(f"config key {key}: {value!r} is not a port")
    elif section == "log" and name == "level":
        cfg.log_level = str(value).upper()
        if cfg.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise InvalidArgument(f"config key {key}: {value!r} is not a log level")
    elif section == "cluster" and name == "short_circuit":
        flag = _coerce(True, value, key)
        if not isinstance(flag, bool):
            raise InvalidArgument(f"config key {key}: {value!r} is not true or false")
        cfg.cluster_short_circuit = flag
    elif section == "ufs" and name == "sync_interval":
        cfg.ufs_sync_interval = float(_coerce(cfg.ufs_sync_interval, value, key))
    elif section == "ufs" and name == "read_deadline_s":
        cfg.ufs_read_deadline_s = _seconds(value, key)
    else:
        raise InvalidArgument(f"unknown config key {key!r}")


def _set_prefetch(cfg: Config, name: str, value: Any, key: str) -> None:
    if name in ("prefetch_threads", "prefetch_dir_limit"):
        count = _coerce(0, value, key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidArgument(f"config key {key}: {value!r} is not a count (0 or more)")
        setattr(cfg, f"cache_{name}", count)
    elif name == "prefetch_watermark":
        share = _coerce(0.0, value, key)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise InvalidArgument(
                f"config key {key}: {value!r} is not a share of a tier's quota (0 < x <= 1)"
            )
        cfg.cache_prefetch_watermark = float(share)
    else:
        raise InvalidArgument(f"unknown config key {key!r}")


def _seconds(value: Any, key: str) -> float:
    """A positive number of seconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not 0 < seconds < float("inf"):
        raise InvalidArgument(f"config key {key}: {value!r} is not a positive number of seconds")
    return seconds


def _check_journal(journal: JournalOptions) -> None:
    if journal.writer not in WRITERS:
        raise InvalidArgument(
            f"config key journal.writer: {journal.writer!r} is not one of {', '.join(WRITERS)}"
        )
    preallocate = journal.preallocate
    if isinstance(preallocate, bool) or not isinstance(preallocate, int) or preallocate < 0:
        raise InvalidArgument(
            f"config key journal.preallocate: {preallocate!r} is not a byte count (0 turns it off)"
        )
    if journal.replay_scanner not in REPLAY_SCANNERS:
        raise InvalidArgument(
            f"config key journal.replay_scanner: {journal.replay_scanner!r} is not one of"
            f" {', '.join(REPLAY_SCANNERS)}"
        )
    if journal.durability not in DURABILITIES:
        raise InvalidArgument(
            f"config key journal.durability: {journal.durability!r} is not one of"
            f" {', '.join(DURABILITIES)}"
        )
    interval = journal.commit_interval_ms
    if (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not 0 < interval <= 60_000
    ):
        raise InvalidArgument(
            f"config key journal.commit_interval_ms: {interval!r} is not a number of"
            " milliseconds above 0 and at most 60000"
        )
