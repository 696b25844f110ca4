"""Validate deploy/k8s offline: every manifest against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), plus this project's rules:

- the kustomization lists existing files, and every manifest file is listed (or is the
  Secret template, deliberately not);
- every Deployment: liveness probe GET /livez, readiness probe GET /readyz, CPU and memory
  requests and limits on every container, non-root with a read-only root file system, and a
  PodDisruptionBudget whose selector matches its pods (and, with minAvailable, more replicas
  than it keeps, so a node can still be drained);
- every Job container has requests and limits;
- the NATS Helm values ask for a 3-replica JetStream cluster with sync_interval: always,
  TLS on the client port, the generated accounts included and their passwords from a Secret.

    python deploy/scripts/validate_k8s.py [--kubernetes-version 1.33]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
HELM_NATS = ROOT / "deploy" / "helm" / "nats-values.yaml"
NOT_IN_KUSTOMIZATION = {"secret.template.yaml", "kustomization.yaml"}


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def containers_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list(resource["spec"]["template"]["spec"]["containers"])


def check_resources(where: str, container: dict[str, Any]) -> list[str]:
    resources = container.get("resources", {})
    return [
        f"{where}: container {container['name']} has no {kind}.{what}"
        for kind in ("requests", "limits")
        for what in ("cpu", "memory")
        if what not in resources.get(kind, {})
    ]


def probe_path(container: dict[str, Any], probe: str) -> str | None:
    return container.get(probe, {}).get("httpGet", {}).get("path")


def check_deployment(where: str, deployment: dict[str, Any], pdbs: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    pod = deployment["spec"]["template"]
    for container in pod["spec"]["containers"]:
        name = container["name"]
        if probe_path(container, "livenessProbe") != "/livez":
            errors.append(f"{where}: {name} liveness probe must GET /livez")
        if probe_path(container, "readinessProbe") != "/readyz":
            errors.append(f"{where}: {name} readiness probe must GET /readyz")
        errors += check_resources(where, container)
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: {name} must run with a read-only root file system")
    if pod["spec"].get("securityContext", {}).get("runAsNonRoot") is not True:
        errors.append(f"{where}: pods must run as non-root")
    labels = pod["metadata"]["labels"]
    matching = [
        pdb
        for pdb in pdbs
        if all(labels.get(k) == v for k, v in pdb["spec"]["selector"].get("matchLabels", {}).items())
    ]
    if not matching:
        errors.append(f"{where}: no PodDisruptionBudget selects its pods")
    replicas = deployment["spec"].get("replicas", 1)
    for pdb in matching:
        keep = pdb["spec"].get("minAvailable")
        if isinstance(keep, int) and keep >= replicas:
            errors.append(f"{where}: PDB {pdb['metadata']['name']} keeps {keep} of {replicas} replicas: no drain")
    return errors


def check_nats_values(path: Path) -> list[str]:
    values = yaml.safe_load(path.read_text())
    config = values.get("config", {})
    errors = []
    if not (config.get("cluster", {}).get("enabled") and config["cluster"].get("replicas") == 3):
        errors.append(f"{path.name}: config.cluster must be enabled with 3 replicas")
    if not config.get("jetstream", {}).get("enabled"):
        errors.append(f"{path.name}: config.jetstream.enabled must be true")
    if config.get("jetstream", {}).get("merge", {}).get("sync_interval") != "always":
        errors.append(f"{path.name}: config.jetstream.merge.sync_interval must be 'always'")
    tls = config.get("nats", {}).get("tls", {})
    if not (tls.get("enabled") and tls.get("secretName")):
        errors.append(f"{path.name}: config.nats.tls must be enabled with a secretName")
    if not str(config.get("merge", {}).get("$include", "")).endswith("accounts.conf"):
        errors.append(f"{path.name}: config.merge.$include must include the generated accounts.conf")
    env_from = values.get("container", {}).get("merge", {}).get("envFrom", [])
    if not any(item.get("secretRef", {}).get("name") == "iioe-nats-passwords" for item in env_from):
        errors.append(f"{path.name}: container.merge.envFrom must read the Secret iioe-nats-passwords")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubernetes-version", default="1.33")
    args = parser.parse_args(argv)

    errors: list[str] = []
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    files = {p.name for p in K8S.glob("*.yaml")}
    errors += [f"kustomization.yaml lists {name}, which does not exist" for name in sorted(listed - files)]
    errors += [f"{name} is not listed in kustomization.yaml" for name in sorted(files - listed - NOT_IN_KUSTOMIZATION)]

    resources: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load(path):
            where = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{where}: {'.'.join(str(p) for p in exc.path)}: {exc.message}")
            resources.append((where, doc))

    pdbs = [doc for _, doc in resources if doc["kind"] == "PodDisruptionBudget"]
    for where, doc in resources:
        if doc["kind"] == "Deployment":
            errors += check_deployment(where, doc, pdbs)
        elif doc["kind"] == "Job":
            for container in containers_of(doc):
                errors += check_resources(where, container)
    errors += check_nats_values(HELM_NATS)

    for error in errors:
        print(f"k8s-validate: {error}", file=sys.stderr)
    kinds = sorted({doc["kind"] for _, doc in resources})
    print(
        f"k8s-validate: {len(resources)} resources ({', '.join(kinds)}) against Kubernetes "
        f"{args.kubernetes_version}, {len(errors)} problems"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
