"""Cluster mode (docs/cluster.md): membership in etcd, files placed on workers by a hash ring,
and a client's reads of a file's bytes from the worker that owns it."""
