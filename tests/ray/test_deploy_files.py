"""The Serve config and the RayService manifest are valid for Serve and build the engine application they name."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def serve_configs():
    plain = yaml.safe_load((DEPLOY / "serve.yaml").read_text())
    service = [d for d in yaml.safe_load_all((DEPLOY / "rayservice.yaml").read_text()) if d["kind"] == "RayService"]
    return {"serve.yaml": plain, "rayservice.yaml": yaml.safe_load(service[0]["spec"]["serveConfigV2"])}


@pytest.mark.parametrize("name", ["serve.yaml", "rayservice.yaml"])
def test_serve_configs_validate_and_build_an_autoscaled_gpu_engine(name):
    from ray.serve.schema import ServeDeploySchema

    from server import ray_app

    config = ServeDeploySchema.model_validate(serve_configs()[name]) if hasattr(
        ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(serve_configs()[name])
    app = config.applications[0]
    assert app.name == ray_app.APP_NAME and app.import_path == "server.ray_app:app"
    deployment = app.deployments[0]
    assert deployment.name == ray_app.DEPLOYMENT and deployment.max_ongoing_requests == 1
    assert deployment.ray_actor_options.num_gpus == 1
    built = ray_app.app(dict(app.args))
    options = built._bound_deployment._deployment_config
    assert options.autoscaling_config.min_replicas == 1 and options.autoscaling_config.max_replicas == 4
    assert options.max_ongoing_requests == 1 and options.max_queued_requests == 20


def test_the_manifest_puts_gpu_workers_on_gpu_nodes_and_shares_the_outputs():
    manifest = next(yaml.safe_load_all((DEPLOY / "rayservice.yaml").read_text()))
    cluster = manifest["spec"]["rayClusterConfig"]
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]
    assert worker["nodeSelector"] and worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    head = cluster["headGroupSpec"]["template"]["spec"]
    mounts = {c["name"]: {m["mountPath"] for m in c["volumeMounts"]} for c in [*head["containers"], *worker["containers"]]}
    assert all("/data/outputs" in paths for paths in mounts.values())


def test_unknown_builder_arguments_get_a_sentence():
    from server import ray_app

    with pytest.raises(ValueError, match="Unknown argument"):
        ray_app.app({"replicaz": 2})
