"""Starting the journal's helper processes (the log writer, replay's record checker)."""

from __future__ import annotations

import os
import sys

# The directory holding the top-level packages: the child imports this same code, whatever the
# caller's working directory and however shoal was installed.
CODE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A child's storage named "fd:<n>" on its command line is the socket of a
# journal.remote_storage.StorageServer, not a directory (an OsStorage root is absolute).
STORAGE_FD_PREFIX = "fd:"


def child_argv(module: str, *args: str) -> list[str]:
    """The command line that runs ``module.main()`` in a fresh interpreter with ``args`` as its
    ``sys.argv[1:]``."""
    code = f"import sys; sys.path.insert(0, sys.argv.pop(1)); from {module} import main; main()"
    return [sys.executable, "-c", code, CODE_ROOT, *args]
