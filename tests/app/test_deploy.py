"""deploy/: the Dockerfile, the KubeRay manifests and the `ray up` cluster YAML, checked statically.

No container engine and no Kubernetes run here, so nothing is built or applied: the files must parse,
name the project's image, entry points that the `mahppo` CLI accepts and resources that agree, and the
RayService's Serve config must pass Ray's own ``ServeDeploySchema`` (what ``serve deploy`` validates).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGE = "mahppo:0.1.0"
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


def _manifest(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if str(value).endswith("m") else float(value)


@pytest.mark.parametrize("name,kind,spec_key", [("rayjob-tune.yaml", "RayJob", "rayClusterSpec"),
                                                ("rayservice.yaml", "RayService", "rayClusterConfig")])
def test_kuberay_manifest_runs_the_project_image_with_matching_resources(name, kind, spec_key):
    doc = _manifest(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind
    cluster = doc["spec"][spec_key]
    assert cluster["rayVersion"] == __import__("ray").__version__
    for c in _containers(cluster):
        assert c["image"] == IMAGE
        assert c["resources"]["requests"] == c["resources"]["limits"]
    for group in cluster["workerGroupSpecs"]:  # Ray's CPUs are the pod's CPUs
        container = group["template"]["spec"]["containers"][0]
        assert _cpu(group["rayStartParams"]["num-cpus"]) == _cpu(container["resources"]["limits"]["cpu"])
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_rayjob_entrypoint_is_a_mahppo_tune_command_the_cli_accepts():
    from mahppo.cli import build_parser

    argv = shlex.split(_manifest("rayjob-tune.yaml")["spec"]["entrypoint"])
    assert argv[:2] == ["mahppo", "tune"]
    args = build_parser().parse_args(argv[1:])
    assert args.study == "lr" and args.address == "auto" and args.storage.startswith("/shared/")


def _serve_config() -> dict:
    return yaml.safe_load(_manifest("rayservice.yaml")["spec"]["serveConfigV2"])


def test_rayservice_serve_config_passes_rays_serve_deploy_schema():
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(_serve_config())
    app = schema.applications[0]
    assert app.import_path == "mahppo.serve.app:build_app"
    deployment = app.deployments[0]
    assert deployment.autoscaling_config["min_replicas"] >= 1
    assert deployment.max_ongoing_requests > app.args["max_concurrent_decisions"]


def test_rayservice_args_are_the_app_builders_and_match_serve_config_yaml():
    from mahppo.serve.app import AppArgs

    service = _serve_config()["applications"][0]
    AppArgs.model_validate(service["args"])  # the builder accepts them (one policy source)
    local = yaml.safe_load((ROOT / "serve" / "config.yaml").read_text())["applications"][0]
    for key in ("name", "route_prefix", "import_path", "logging_config"):
        assert service[key] == local[key]
    same = set(local["args"]) - {"checkpoint"}
    assert {k: service["args"][k] for k in same} == {k: local["args"][k] for k in same}
    assert service["deployments"][0]["name"] == local["deployments"][0]["name"]


def test_ray_up_cluster_yaml_passes_rays_cluster_schema_and_runs_the_image():
    import jsonschema
    import ray

    config = _manifest("cluster.yaml")
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    assert config["docker"]["image"] == IMAGE
    assert config["head_node_type"] in config["available_node_types"]
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])


def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps if "==" in d)


def test_dockerfile_installs_the_pinned_cpu_torch_and_every_package_folder_and_runs_the_demo():
    """Static only: no container engine here (`docker build` cannot run in the tests)."""
    text = (DEPLOY / "Dockerfile").read_text()
    pins = _pins()
    install = re.search(r"pip install (torch==\S+ torchvision==\S+) --index-url (\S+)", text)
    assert install and install.group(2) == "https://download.pytorch.org/whl/cpu"
    assert dict(p.split("==") for p in install.group(1).split()) == {k: pins[k] for k in ("torch", "torchvision")}
    dirs = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    copied = set(re.findall(r"^COPY (\w+)/ ", text, flags=re.M))
    assert dirs <= copied
    assert re.search(r'^ENTRYPOINT \["mahppo"\]$', text, flags=re.M)
    assert re.search(r'^CMD \["demo"', text, flags=re.M)
    assert re.search(r"^USER (?!root)\w+", text, flags=re.M)


def test_the_package_ships_its_type_hints():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in cfg["package-data"]["mahppo"] and (ROOT / "mahppo" / "py.typed").is_file()
