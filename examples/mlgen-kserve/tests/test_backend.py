"""Quick tests: the plugin loads through its entry point and registers its backend."""

from __future__ import annotations

from mlgen.plugins import load_plugins

import mlgen_kserve


def test_backend_is_registered_through_the_entry_point() -> None:
    registry = load_plugins()
    registered = registry.get_backend("kserve")
    assert registered.plugin.distribution == "mlgen-kserve"
    assert registered.plugin.api_version == 1


def test_backend_contributes_files() -> None:
    registry = load_plugins()
    files = registry.contributed_files({"serving_backend": "kserve"})
    assert "src/{{ package_name }}/serving/model.py" in files
    # The model itself is the template's ONNX modeling module, shared with every ONNX backend.
    assert "src/{{ package_name }}/modeling.py" not in files


def test_backend_serves_with_kserve_not_the_reference_app() -> None:
    registry = load_plugins()
    files = registry.contributed_files({"serving_backend": "kserve"})
    for path in (
        "src/{{ package_name }}/serving/model.py",
        "src/{{ package_name }}/serving/smoke.py",
        "tests/test_serving.py",
        "Dockerfile",
        "docs/serving.md",
        "deploy/kserve/inferenceservice.yaml",
    ):
        assert path in files, path
    assert "src/{{ package_name }}/serving/app.py" not in files
    # No client of its own: the runtime's shared v2 client (mlgen_runtime.inference_client).
    assert "src/{{ package_name }}/serving/client.py" not in files
    # Of deploy/k8s the plugin contributes only its kustomize patch; the template lists it.
    contributed_k8s = [path for path in files if path.startswith("deploy/k8s/")]
    assert contributed_k8s == [mlgen_kserve.GRACE_PATCH_PATH]
    assert mlgen_kserve.BACKEND.kustomize_patches == (mlgen_kserve.GRACE_PATCH_PATH,)


def test_backend_definition_follows_kserve_defaults() -> None:
    import mlgen_kserve

    container = load_plugins().get_backend("kserve").backend.container
    assert {port.name: port.container_port for port in container.ports} == {
        "http": 8080,
        "grpc": 8081,
    }
    assert (container.readiness.path, container.liveness.path) == (
        "/v2/health/ready",
        "/v2/health/live",
    )
    assert container.metrics_port == "http"
    assert container.startup is not None and container.startup.path == "/v2/health/live"
    assert {variable.name for variable in container.env} == {"MODEL_PATH"}
    assert "kserve==" + mlgen_kserve.KSERVE_VERSION in mlgen_kserve.BACKEND.serving_dependencies
