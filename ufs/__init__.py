"""Under-file-system connectors: the stores Shoal mounts (local paths and NFS, S3 and its
compatibles). A connector knows nothing of caching or the journal; see ufs/base.py."""
