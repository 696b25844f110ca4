"""deploy/scripts/validate_k8s.py (`make k8s-validate`): the shipped manifests pass, and the
rules it adds to the schema check catch what they are meant to catch."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> ModuleType:
    pytest.importorskip("kubernetes_validate")
    spec = importlib.util.spec_from_file_location("validate_k8s", ROOT / "deploy" / "scripts" / "validate_k8s.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def certification() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "certification.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    return deployment, pdbs


def test_shipped_manifests_are_valid(validator: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert validator.main([]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_probes_must_be_livez_and_readyz(validator: ModuleType, certification: Any) -> None:
    deployment, pdbs = certification
    assert validator.check_deployment("cert", deployment, pdbs) == []
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["path"] = "/healthz"
    container["readinessProbe"]["httpGet"]["path"] = "/livez"
    errors = validator.check_deployment("cert", broken, pdbs)
    assert any("liveness probe must GET /livez" in e for e in errors)
    assert any("readiness probe must GET /readyz" in e for e in errors)


def test_resources_and_disruption_budget_are_required(validator: ModuleType, certification: Any) -> None:
    deployment, pdbs = certification
    broken = copy.deepcopy(deployment)
    del broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
    assert any("limits.cpu" in e for e in validator.check_deployment("cert", broken, pdbs))
    assert any("no PodDisruptionBudget" in e for e in validator.check_deployment("cert", deployment, []))
    single = copy.deepcopy(deployment)
    single["spec"]["replicas"] = 1
    assert any("no drain" in e for e in validator.check_deployment("cert", single, pdbs))
