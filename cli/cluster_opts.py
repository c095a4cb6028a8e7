"""The options of cluster mode that `shoal worker` and `shoal mount --cluster` share: the
cluster's address and its token, a secret kept like the stores' (docs/cluster.md)."""

from __future__ import annotations

import argparse
import os

from cli import secret_sources
from cli.common import UsageError
from engine.cluster.etcd import parse_cluster_url
from engine.credentials import read_secret_file

TOKEN_KEY = "cluster_token"


def add_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--cluster",
        required=required,
        metavar="etcd://HOST:PORT/CLUSTER",
        help="the cluster: etcd's client address and the cluster's name (docs/cluster.md)",
    )
    parser.add_argument(
        "--cluster-token-file",
        metavar="PATH",
        help="the cluster's token: a file of mode 0600 holding it on one line",
    )
    parser.add_argument(
        "--cluster-token-stdin",
        action="store_true",
        help="read the cluster's token from standard input, one line",
    )


def token(args: argparse.Namespace) -> str:
    """The cluster's token, from its file or standard input (never an argv or environment)."""
    parse_cluster_url(args.cluster)  # a bad address refused before anything is read
    if args.cluster_token_stdin and args.cluster_token_file:
        raise UsageError("--cluster-token-file and --cluster-token-stdin both give the token")
    if args.cluster_token_stdin:
        if getattr(args, "secret_key_stdin", False):
            raise UsageError(
                "--cluster-token-stdin and --secret-key-stdin cannot share standard input:"
                " give one of them as a file"
            )
        return secret_sources.read_stdin(TOKEN_KEY)
    if args.cluster_token_file:
        return read_secret_file(os.path.abspath(args.cluster_token_file), TOKEN_KEY)
    raise UsageError(
        "--cluster needs the cluster's token: --cluster-token-file PATH (mode 0600) or"
        " --cluster-token-stdin"
    )
