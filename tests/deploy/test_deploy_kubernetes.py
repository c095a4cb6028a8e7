"""deploy/kubernetes: every manifest passes Kubernetes' own schemas (offline, bundled by
kubernetes-validate), and the Shoal in it is one Shoal accepts: command lines its parser takes,
tokens only in owner-only Secret files, configuration its loader takes, probes on the block
service's health path, a client mount that reaches the node and the training pods. Each check
is also shown refusing a broken copy, so none is a check that cannot fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import (
    KUBE,
    Doc,
    all_docs,
    command_problems,
    config_problems,
    containers,
    load,
    manifest_command_problems,
    manifest_files,
    mutated,
    probe_problems,
    propagation_problems,
    schema_problems,
    token_problems,
)


def container_of(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]["containers"][0]


def set_arg(doc: Doc, prefix: str, value: str) -> None:
    args = container_of(doc)["args"]
    args[next(i for i, a in enumerate(args) if a.startswith(prefix))] = value


def test_deploy_manifests_pass_the_kubernetes_schemas() -> None:
    docs = all_docs()
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Service", "StatefulSet", "ConfigMap", "DaemonSet", "Pod"} <= kinds
    assert schema_problems(docs) == []


def test_deploy_schema_check_refuses_a_wrong_field() -> None:
    docs = all_docs()

    def misspelt(doc: Doc) -> None:
        container_of(doc)["argz"] = container_of(doc).pop("args")

    def bad_propagation(doc: Doc) -> None:
        container_of(doc)["volumeMounts"][0]["mountPropagation"] = 7

    def no_selector(doc: Doc) -> None:
        del doc["spec"]["selector"]

    for change, said in ((misspelt, "argz"), (bad_propagation, "mountPropagation"),
                         (no_selector, "selector")):  # fmt: skip
        problems = schema_problems(mutated(docs, "DaemonSet", "shoal-worker", change))
        assert len(problems) == 1 and said in problems[0], problems


def test_deploy_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    listed = {KUBE / name for name in kustomization["resources"]}
    shipped = {p for p in manifest_files() if p.parent == KUBE}  # examples/ are not applied
    assert listed == shipped
    assert all(load(p) for p in listed)


def test_deploy_command_lines_are_ones_shoal_accepts() -> None:
    docs = all_docs()
    assert manifest_command_problems(docs) == []
    argvs = [c.get("args", []) for _s, c in containers(docs) if c.get("command") == ["shoal"]]
    assert {a[1] for a in argvs} == {"worker", "mount"}  # after --home=DIR


def test_deploy_command_check_refuses_what_shoal_would() -> None:
    docs = all_docs()
    cases: list[tuple[str, Any, str]] = [
        ("shoal-worker", lambda d: set_arg(d, "--id", "--name=n"), "unrecognized arguments"),
        ("shoal-worker", lambda d: set_arg(d, "--listen", "--listen=7070"), "HOST:PORT"),
        ("shoal-client", lambda d: set_arg(d, "--cluster=", "--cluster=http://e:1/t"), "etcd://"),
        ("shoal-client", lambda d: set_arg(d, "region=", "=us-east-1"), "empty key"),
    ]
    for name, change, said in cases:
        problems = manifest_command_problems(mutated(docs, "DaemonSet", name, change))
        assert len(problems) == 1 and said in problems[0], problems
    assert "umount" in " ".join(command_problems(["umount"]))  # its MOUNTPOINT is missing


def test_deploy_token_only_from_an_owner_only_secret_file() -> None:
    docs = all_docs()
    assert token_problems(docs) == []

    def readable(doc: Doc) -> None:
        token = next(v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == "token")
        token["secret"]["defaultMode"] = 0o444

    def in_environment(doc: Doc) -> None:
        secret = {"secretKeyRef": {"name": "shoal-cluster-token", "key": "token"}}
        container_of(doc)["env"].append({"name": "SHOAL_TOKEN", "valueFrom": secret})

    def from_a_config_map(doc: Doc) -> None:
        set_arg(doc, "--cluster-token-file", "--cluster-token-file=/etc/shoal/config/token")

    def from_stdin(doc: Doc) -> None:
        set_arg(doc, "--cluster-token-file", "--cluster-token-stdin")

    for change, said in ((readable, "mode 444"), (in_environment, "in the environment"),
                         (from_a_config_map, "not in a Secret volume")):  # fmt: skip
        problems = token_problems(mutated(docs, "DaemonSet", "shoal-worker", change))
        assert len(problems) == 1 and said in problems[0], problems
    problems = manifest_command_problems(mutated(docs, "DaemonSet", "shoal-worker", from_stdin))
    assert problems and "--cluster-token-file" in problems[0], problems


def test_deploy_config_map_is_one_shoal_loads(tmp_path: Path) -> None:
    docs = all_docs()
    assert config_problems(docs, tmp_path) == []

    def unknown_key(doc: Doc) -> None:
        doc["data"]["worker.toml"] += "\n[cache]\nevicter = 'LRU'\n"

    def tier_off_volume(doc: Doc) -> None:
        doc["data"]["client.toml"] = doc["data"]["client.toml"].replace(
            "/var/cache/shoal/near", "/tmp/near"
        )

    def memory_over_limit(doc: Doc) -> None:
        doc["data"]["worker.toml"] = doc["data"]["worker.toml"].replace("7GiB", "9GiB")

    for change, said in ((unknown_key, "evicter"), (tier_off_volume, "/tmp/near: no volume"),
                         (memory_over_limit, "tier MEM over its emptyDir")):  # fmt: skip
        problems = config_problems(mutated(docs, "ConfigMap", "shoal-config", change), tmp_path)
        assert len(problems) == 1 and said in problems[0], problems


def test_deploy_worker_probes_ask_the_health_path() -> None:
    docs = all_docs()
    assert probe_problems(docs) == []

    def wrong_path(doc: Doc) -> None:
        container_of(doc)["livenessProbe"]["httpGet"]["path"] = "/healthz"

    problems = probe_problems(mutated(docs, "DaemonSet", "shoal-worker", wrong_path))
    assert len(problems) == 1 and "livenessProbe" in problems[0], problems


def test_deploy_client_mount_reaches_the_node_and_the_training_pod() -> None:
    docs = all_docs()
    assert propagation_problems(docs) == []

    def one_way(doc: Doc) -> None:
        container_of(doc)["volumeMounts"][0]["mountPropagation"] = "HostToContainer"

    def unprivileged(doc: Doc) -> None:
        container_of(doc)["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}

    def own_pids(doc: Doc) -> None:
        del doc["spec"]["template"]["spec"]["hostPID"]

    def no_propagation(doc: Doc) -> None:
        del doc["spec"]["containers"][0]["volumeMounts"][0]["mountPropagation"]

    for kind, name, change, said in (
        ("DaemonSet", "shoal-client", one_way, "not in a Bidirectional mount"),
        ("DaemonSet", "shoal-client", unprivileged, "privileged"),
        ("DaemonSet", "shoal-client", own_pids, "hostPID"),
        ("Pod", "train-resnet", no_propagation, "HostToContainer"),
    ):
        problems = propagation_problems(mutated(docs, kind, name, change))
        assert len(problems) == 1 and said in problems[0], problems
