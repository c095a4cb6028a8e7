"""The fsspec client: reads a running daemon's namespace without FUSE (docs/client.md).

``fsspec.filesystem("shoal", mountpoint=MNT)`` (the ``fsspec.specs`` entry point) gives a
``ShoalFileSystem`` that asks the daemon's client socket for metadata and for descriptors of
the cached block files, and reads those itself (short-circuit reads); blocks not cached it
reads through the daemon, which caches them on the way."""
