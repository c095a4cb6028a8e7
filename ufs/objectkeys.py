"""How the object stores (S3, Azure Blob, GCS) name what a path holds: a key below the mount's
prefix, a directory as the prefix of its children's keys (and its marker's, with a "/")."""

from __future__ import annotations

from ufs.base import NameRules, join, normalize

KEY_MAX = 1024  # bytes of a key, UTF-8: S3's and GCS's limit; Azure's is 1,024 characters


class ObjectKeys:
    prefix: str  # normalized, "" for a bucket's or container's root

    @staticmethod
    def rules_for(prefix: str) -> NameRules:
        """Keys are UTF-8 and at most KEY_MAX bytes, the prefix and a directory marker's
        trailing "/" included."""
        prefix = normalize(prefix)
        base = len(prefix.encode("utf-8", "surrogateescape")) + 1 if prefix else 0
        return NameRules(name_max=KEY_MAX, key_max=KEY_MAX, key_base=base, dir_suffix=1, utf8=True)

    def _key(self, rel: str) -> str:
        return join(self.prefix, rel) if rel else self.prefix

    def _dir_prefix(self, rel: str) -> str:
        key = self._key(rel)
        return f"{key}/" if key else ""
