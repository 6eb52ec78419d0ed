"""Build real, importable plugin distributions in a folder, for tests.

A distribution here is a ``NAME-VERSION.dist-info`` folder (METADATA and
``entry_points.txt``) next to its module, exactly what pip leaves in site-packages,
so ``importlib.metadata`` discovers it once the folder is on ``sys.path``/``PYTHONPATH``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

BACKEND_MODULE = """
from __future__ import annotations

import mlgen

MLGEN_PLUGIN_API = {api}

BACKEND = mlgen.Backend(
    name={backend!r},
    description="Test backend {backend} from {dist} {version}",
    export_format={export_format!r},
    templates_package=__name__,
    templates_dir="files",
    container=mlgen.ContainerSpec(
        base_image="python:3.11-slim",
        command=("serve",),
        ports=(mlgen.Port("http", 8080),),
        readiness=mlgen.Probe("/ready", "http"),
        liveness=mlgen.Probe("/health", "http"),
    ),
    smoke_test=("python", "-c", "print('smoke')"),
    metrics=mlgen.MetricQueries(
        request_rate="sum(rate(requests_total{{{{selector}}}}[{{window}}]))",
        error_rate="sum(rate(errors_total{{{{selector}}}}[{{window}}]))",
        latency_quantile="histogram_quantile({{quantile}}, rate(l_bucket{{{{selector}}}}[5m]))",
    ),
    dependencies=("requests>=2",),
)


@mlgen.hookimpl
def mlgen_register_backends(register):
    register(BACKEND)
"""


@dataclass
class FakePlugin:
    """One plugin distribution: its module source and (optionally) template files."""

    dist: str
    module: str
    entry_name: str
    source: str
    version: str = "1.0"
    files: dict[str, str] = field(default_factory=dict)

    def install(self, site: Path) -> Path:
        """Write the distribution into ``site`` and return ``site``."""
        package = site / self.module
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(textwrap.dedent(self.source), encoding="utf-8")
        for relative, text in self.files.items():
            target = package / "files" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        info = site / f"{self.dist.replace('-', '_')}-{self.version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {self.dist}\nVersion: {self.version}\n",
            encoding="utf-8",
        )
        (info / "entry_points.txt").write_text(
            f"[mlgen]\n{self.entry_name} = {self.module}\n", encoding="utf-8"
        )
        return site


def backend_plugin(
    backend: str,
    *,
    dist: str | None = None,
    version: str = "1.0",
    api: int = 1,
    files: dict[str, str] | None = None,
    export_format: str = "onnx",
) -> FakePlugin:
    """A working backend plugin called ``backend`` with a small set of template files."""
    dist = dist or f"mlgen-{backend}"
    module = f"{dist.replace('-', '_')}_plugin"
    source = BACKEND_MODULE.format(
        api=api, backend=backend, dist=dist, version=version, export_format=export_format
    )
    default_files = {
        "src/{{ package_name }}/serving/server.py.jinja": "# {{ model_name }} served by "
        + backend
        + " "
        + version
        + "\n",
        "SERVING.md.jinja": "{{ model_name }} uses the " + backend + " backend.\n",
    }
    return FakePlugin(
        dist, module, backend, source, version, default_files if files is None else files
    )
