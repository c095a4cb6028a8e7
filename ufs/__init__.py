"""Under-file-system connectors (local, S3). Built by the UFS issue; nothing here yet."""
