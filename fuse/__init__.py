"""The pyfuse3 frontend. Built by the POSIX-mount issue; nothing here yet."""
