"""Model frameworks: the ``model_framework`` answer, the format it exports, the backends
that serve it.

A repository trains with one framework and exports its model in a format; a serving
backend serves one or more formats (``Backend.served_formats()``). The pair works when
the backend serves a format the framework exports. The table below is the template's:
it has a modeling module per format, whose model code follows the framework.

============  ==================  ==============================================
framework     exports             model in the template's modeling module
============  ==================  ==============================================
sklearn       onnx                scikit-learn pipeline (scaler + logistic regression)
lightgbm      onnx                LightGBM ``LGBMClassifier`` (onnxmltools' converter)
xgboost       onnx                XGBoost ``XGBClassifier`` (onnxmltools' converter)
pytorch       torchscript         a small PyTorch network
tensorflow    savedmodel          Keras, as a TensorFlow SavedModel
============  ==================  ==============================================

PyTorch and TensorFlow to ONNX are not offered: their ONNX exporters (torch.onnx's
dynamo exporter with onnxscript, tf2onnx) add heavy, fast-moving dependencies for no
backend that lacks a native server for the format.

A backend none of whose formats any framework exports (a format of its own, with its
own modeling module) takes any framework answer: its modeling module decides what the
answer means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlgen.backend import Backend

FRAMEWORK_FORMATS: dict[str, tuple[str, ...]] = {
    "sklearn": ("onnx",),
    "lightgbm": ("onnx",),
    "xgboost": ("onnx",),
    "pytorch": ("torchscript",),
    "tensorflow": ("savedmodel",),
}
"""Each framework's export formats, preferred first (the choices of ``model_framework``)."""
DEFAULT_FRAMEWORK = "sklearn"
FORMAT_DEFAULT_FRAMEWORK: dict[str, str] = {
    "onnx": "sklearn",
    "torchscript": "pytorch",
    "savedmodel": "tensorflow",
}
"""A backend's default framework, by its main ``export_format``: what repositories of that
backend trained before the question existed."""


def framework_names() -> list[str]:
    """The choices of ``model_framework``, the default first."""
    return list(FRAMEWORK_FORMATS)


def default_framework(backend: Backend) -> str:
    """The ``model_framework`` default for ``backend``: the one its main format comes from."""
    return FORMAT_DEFAULT_FRAMEWORK.get(backend.export_format, DEFAULT_FRAMEWORK)


def export_format(backend: Backend, framework: str) -> str | None:
    """The format a repository of this pair exports: the first of ``framework``'s formats
    that ``backend`` serves; ``None`` when it serves none of them."""
    served = backend.served_formats()
    return next((name for name in FRAMEWORK_FORMATS.get(framework, ()) if name in served), None)


def _known_formats(backend: Backend) -> bool:
    exported = {name for formats in FRAMEWORK_FORMATS.values() for name in formats}
    return any(name in exported for name in backend.served_formats())


def frameworks_for(backend: Backend) -> list[str]:
    """The frameworks ``backend`` can serve (every one for a format of its own)."""
    if not _known_formats(backend):
        return framework_names()
    return [name for name in FRAMEWORK_FORMATS if export_format(backend, name) is not None]


def pair_problem(backend: str, framework: str, backends: Mapping[str, Backend]) -> str:
    """``""`` if ``backends[backend]`` can serve a ``framework`` model, else one line that
    names the pairs that work (copier prints it after the question's name).

    An unknown backend or framework is not this check's business (the choices are).
    """
    chosen = backends.get(backend)
    if chosen is None or framework not in FRAMEWORK_FORMATS or not _known_formats(chosen):
        return ""
    if export_format(chosen, framework) is not None:
        return ""
    others = sorted(name for name, other in backends.items() if framework in frameworks_for(other))
    with_framework = f", or {framework} with {_either(others)}" if others else ""
    return (
        f"{backend} serves {_either(chosen.served_formats())} and {framework} exports "
        f"{_either(FRAMEWORK_FORMATS[framework])}: use {backend} with "
        f"{_either(frameworks_for(chosen))}{with_framework}"
    )


def _either(names: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else list(names))
