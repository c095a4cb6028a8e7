"""The `shoal` command line: thin entry points that parse arguments, call engine and recovery
code, print, and exit. Errors become exit codes in one place, ``cli.main``."""
