"""The checks tests/deploy runs on deploy/: each takes the parsed documents and returns the
problems it found (none: an empty list), so that a test can show both that the shipped files
pass and that a broken copy is refused."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from cli.daemon_cmds import split_options
from cli.main import build_parser
from engine.cluster.etcd import parse_cluster_url
from engine.config import load_config, parse_size
from engine.errors import ShoalError
from fuse.worker import host_port

HEALTH_PATH = "/v1/health"  # fuse/blockserver.py answers it without the token

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SYSTEMD = ROOT / "deploy" / "systemd"
# The newest Kubernetes whose schemas the installed kubernetes-validate bundles (offline).
KUBE_VERSION = kubernetes_validate.latest_version()
Doc = dict[str, Any]
# What the downward API gives the shipped manifests' $(VAR)s, as a node would.
POD_VALUES = {"NODE_NAME": "node-a", "NODE_IP": "192.0.2.7", "POD_NAME": "etcd-0"}


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")


def load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_docs() -> list[Doc]:
    return [doc for path in manifest_files() for doc in load(path)]


def schema_problems(docs: list[Doc]) -> list[str]:
    """Kubernetes' own OpenAPI schemas, strict: an unknown field is an error, not ignored."""
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc.get('kind')}/{name_of(doc)}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{doc.get('kind')} {doc.get('apiVersion')}: no such resource")
    return problems


def name_of(doc: Doc) -> str:
    return str(doc.get("metadata", {}).get("name"))


def pod_spec(doc: Doc) -> Doc | None:
    if doc.get("kind") == "Pod":
        return doc["spec"]
    template = doc.get("spec", {}).get("template")
    return template["spec"] if template else None


def containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(pod spec, container) for every container of every workload."""
    for doc in docs:
        spec = pod_spec(doc)
        for container in (spec or {}).get("containers", []) + (spec or {}).get(
            "initContainers", []
        ):
            yield spec or {}, container


def shoal_argv(container: Doc) -> list[str] | None:
    """The container's shoal command line with its $(VAR)s as a node fills them, or None."""
    command = container.get("command", [])
    if not command or command[0] != "shoal":
        return None
    words = [*command[1:], *container.get("args", [])]
    return [re.sub(r"\$\((\w+)\)", lambda m: POD_VALUES[m.group(1)], w) for w in words]


def parse_shoal(argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    """Shoal's own parser on ``argv``: (namespace, "") or (None, its error message)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(argv), ""
    except SystemExit:
        return None, (err.getvalue().strip().splitlines() or ["refused"])[-1]


def shoal_args(container: Doc) -> argparse.Namespace | None:
    argv = shoal_argv(container)
    return None if argv is None else parse_shoal(argv)[0]


def command_problems(argv: list[str]) -> list[str]:
    """What `shoal worker` / `shoal mount --cluster` would refuse in ``argv`` before serving:
    an unknown flag, a bad cluster address or HOST:PORT, a malformed -o, a token not in a file."""
    args, error = parse_shoal(argv)
    if args is None:
        return [f"shoal {' '.join(argv)}: {error}"]
    problems = []
    if args.command not in ("worker", "mount", "umount"):
        problems.append(f"shoal {args.command}: not a command a deployment runs")
    if args.command in ("worker", "mount"):
        try:
            if args.command == "worker" or args.cluster:
                parse_cluster_url(args.cluster)
            if args.command == "worker":
                host_port(args.listen, "--listen")
                if args.advertise:
                    host_port(args.advertise, "--advertise")
            split_options(args.option)
        except Exception as exc:  # the CLI's own refusals, each naming the problem
            problems.append(f"shoal {args.command}: {exc}")
        if args.cluster and not args.cluster_token_file:
            problems.append(f"shoal {args.command}: the token must come from --cluster-token-file")
    return problems


def manifest_command_problems(docs: list[Doc]) -> list[str]:
    problems, seen = [], 0
    for _spec, container in containers(docs):
        argv = shoal_argv(container)
        if argv is not None:
            seen += 1
            problems += command_problems(argv)
        hook = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        if hook and hook[0] == "shoal":
            problems += command_problems(hook[1:])
    return problems if seen else ["no shoal command line found"]


def token_problems(docs: list[Doc]) -> list[str]:
    """The cluster's token (and any secret) reaches Shoal only as a file of a Secret volume whose
    mode lets only its owner read it: never an environment variable, never an argument."""
    problems = []
    for spec, container in containers(docs):
        for var in container.get("env", []) + container.get("envFrom", []):
            if "secretKeyRef" in var.get("valueFrom", {}) or "secretRef" in var:
                problems.append(f"{container['name']}: a secret in the environment ({var})")
        argv = shoal_argv(container) or []
        if "--cluster-token-stdin" in argv:
            problems.append(f"{container['name']}: --cluster-token-stdin in a pod")
        args = shoal_args(container)
        path = getattr(args, "cluster_token_file", None)
        if args is not None and getattr(args, "cluster", None) and path:
            volume = volume_holding(spec, container, path)
            secret = (volume or {}).get("secret")
            if secret is None:
                problems.append(f"{container['name']}: {path} is not in a Secret volume")
            elif secret.get("defaultMode", 0o644) & 0o077:
                mode = secret.get("defaultMode", 0o644)
                problems.append(f"{container['name']}: {path} of mode {mode:o}, not its owner's")
    return problems


def mount_holding(container: Doc, path: str) -> Doc | None:
    """The container's volumeMount at a directory holding ``path``."""
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            return mount
    return None


def volume_holding(spec: Doc, container: Doc, path: str) -> Doc | None:
    """The pod volume mounted in ``container`` at a directory holding ``path``."""
    mount = mount_holding(container, path)
    if mount is None:
        return None
    return next(v for v in spec.get("volumes", []) if v["name"] == mount["name"])


def mutated(docs: list[Doc], kind: str, name: str, change: Any) -> list[Doc]:
    """A deep copy of ``docs`` with ``change`` applied to the document ``kind``/``name``."""
    out = copy.deepcopy(docs)
    change(next(d for d in out if d["kind"] == kind and name_of(d) == name))
    return out


def config_problems(docs: list[Doc], scratch: Path) -> list[str]:
    """Each --config FILE a container names is a key of a ConfigMap mounted there, which Shoal's
    own loader accepts, and whose tiers' paths are volumes of that container (a tier on the
    container's own filesystem would vanish with it); a memory tier's quota fits its emptyDir."""
    maps = {name_of(d): d["data"] for d in docs if d["kind"] == "ConfigMap"}
    problems = []
    for spec, container in containers(docs):
        args = shoal_args(container)
        config = getattr(args, "config", None)
        if args is None or config is None:
            continue
        volume = volume_holding(spec, container, config) or {}
        text = maps.get(volume.get("configMap", {}).get("name"), {}).get(Path(config).name)
        if text is None:
            problems.append(f"{container['name']}: --config {config} is in no ConfigMap")
            continue
        (scratch / "shoal.toml").write_text(text)
        try:
            cfg = load_config(str(scratch))
        except ShoalError as exc:
            problems.append(f"{container['name']}: {config}: {exc}")
            continue
        if cfg.cache_tiers is None:
            problems.append(f"{container['name']}: {config} names no tiers (defaults: the home)")
        for tier in cfg.cache_tiers or []:
            for path in tier.paths:
                tier_volume = volume_holding(spec, container, path + "/blocks")
                if tier_volume is None:
                    problems.append(f"{container['name']}: tier {tier.name} {path}: no volume")
                elif "emptyDir" in tier_volume:
                    empty = tier_volume["emptyDir"]
                    limit = parse_size(str(empty.get("sizeLimit", "0")) + "B", "sizeLimit")
                    if empty.get("medium") != "Memory" or limit < tier.quota_bytes:
                        problems.append(f"{container['name']}: tier {tier.name} over its emptyDir")
    return problems


def probe_problems(docs: list[Doc]) -> list[str]:
    """A worker's probes ask the block service's /v1/health (no token) on its --listen port."""
    problems, workers = [], 0
    for _spec, container in containers(docs):
        args = shoal_args(container)
        if args is None or args.command != "worker":
            continue
        workers += 1
        port = host_port(args.listen, "--listen")[1]
        for probe in ("readinessProbe", "livenessProbe"):
            get = container.get(probe, {}).get("httpGet", {})
            if get.get("path") != HEALTH_PATH or get.get("port") != port:
                problems.append(f"{container['name']}: {probe} is not GET {HEALTH_PATH}:{port}")
    return problems if workers else ["no shoal worker found"]


def propagation_problems(docs: list[Doc]) -> list[str]:
    """A client's FUSE mount reaches the node (Bidirectional, which only a privileged container
    may ask for) and the node's reaches a training pod (HostToContainer); the daemon's pid in
    its home is the node's, so `shoal umount` and a restarted client tell it alive or dead."""
    problems, host_dirs = [], set()
    for spec, container in containers(docs):
        args = shoal_args(container)
        if args is None or args.command != "mount":
            continue
        mount = mount_holding(container, args.mountpoint)
        if mount is None or mount.get("mountPropagation") != "Bidirectional":
            problems.append(f"{container['name']}: {args.mountpoint} not in a Bidirectional mount")
            continue
        if not container.get("securityContext", {}).get("privileged"):
            problems.append(f"{container['name']}: Bidirectional needs privileged: true")
        if not spec.get("hostPID"):
            problems.append(f"{container['name']}: its daemon.pid needs the node's PIDs (hostPID)")
        volume = volume_holding(spec, container, args.mountpoint) or {}
        host_dirs.add(volume.get("hostPath", {}).get("path"))
    for _spec, container in containers(docs):
        for m in container.get("volumeMounts", []):
            if m.get("mountPropagation") == "HostToContainer":
                volume = next(v for v in _spec["volumes"] if v["name"] == m["name"])
                host_dirs.discard(volume.get("hostPath", {}).get("path"))
    return problems + [f"no pod mounts {d} with HostToContainer" for d in sorted(host_dirs)]
