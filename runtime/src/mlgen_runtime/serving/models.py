"""The request and response models of ``POST /predict``, derived from a feature schema.

One example is a JSON object with every feature as its raw value (``FeatureRow``: a
number, a string category's level, ``true``/``false`` for a boolean, ``null`` for a
nullable feature; ranges, codes and levels checked by pydantic's own constraints, see
:func:`_field`); a batch is ``{"instances": [...]}``; either may carry a
``user_id`` for A/B routing. The same models validate requests and produce the OpenAPI
schema.
"""

# No ``from __future__ import annotations``: pydantic reads the annotations of the models
# built inside functions here as real objects.

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    RootModel,
    StrictBool,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    create_model,
    field_validator,
)
from typing_extensions import TypedDict

from mlgen_runtime.schema import Feature, FeatureSchema

MAX_USER_ID_LENGTH = 256
USER_ID_HEADER = "X-User-Id"
UNION_TAGS = ("single row", "batch")
"""The tags of the request union; they are left out of error locations."""
MAX_LEVEL_LENGTH = 256
"""The longest string a category with ``unknown: other`` accepts."""
MAX_INT_ID = 2**53 - 1
"""The largest integer user id (and ``-MAX_INT_ID`` the smallest): integers every JSON
reader keeps exact. The bound is exact as a double too, so a schema-driven client (a
fuzzer, a generated SDK) and this validator agree on it; larger ids go as strings."""


def _user_id(value: Any) -> str | int:
    """A user id: a string of 1 to 256 characters, or an integer within
    :data:`MAX_INT_ID` (``7.0`` is 7)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        if not 1 <= len(value) <= MAX_USER_ID_LENGTH:
            raise ValueError(f"user_id must have 1 to {MAX_USER_ID_LENGTH} characters")
        try:  # JSON may carry lone surrogates ("\ud800"): they cannot be hashed as UTF-8
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("user_id must be valid Unicode text") from None
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_INT_ID <= value <= MAX_INT_ID:
            raise ValueError(
                f"an integer user_id must be within +-{MAX_INT_ID}; send larger ids as strings"
            )
        return value
    raise ValueError("user_id must be a string or an integer")


UserId = Annotated[
    str | int,
    PlainValidator(_user_id),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_LENGTH},
                {"type": "integer", "minimum": -MAX_INT_ID, "maximum": MAX_INT_ID},
            ],
            "description": "A stable user id: requests with one are routed to an A/B "
            f"variant (sticky); takes precedence over the {USER_ID_HEADER} header.",
        }
    ),
]


def _field(feature: Feature) -> tuple[Any, Any]:
    """The pydantic field of one feature, as its raw value.

    * a number: a finite number inside the feature's range (an integer also a whole
      number);
    * a category with integer levels: one of its codes (an ``enum`` in the schema);
    * a boolean: ``true``/``false`` or 1/0;
    * a category with string levels: one of the levels (a ``Literal``: a 422 names
      them) when the schema says ``unknown: reject``, any string with ``unknown: other``
      (the model maps an unknown one to the ``"other"`` level);
    * nullable: also ``null``, and the key may be left out.
    """
    categorical = feature.kind == "categorical"
    levels = tuple(getattr(feature, "levels", ()) or ())
    description = feature.description
    value: Any
    if levels and all(isinstance(level, str) for level in levels):
        if getattr(feature, "unknown", "reject") == "other":
            description = f"{description} One of {list(levels)}; any other value counts as "
            description += "'other'."
            value = Annotated[str, Field(min_length=1, max_length=MAX_LEVEL_LENGTH)]
        else:
            value = Literal[levels]
    else:
        codes = list(getattr(feature, "codes", ()) or feature.levels) if categorical else []
        contiguous = codes == list(range(int(feature.minimum), int(feature.maximum) + 1))
        constraints = Field(
            ge=feature.minimum,
            le=feature.maximum,
            allow_inf_nan=False,
            multiple_of=1 if categorical or getattr(feature, "type", "") == "integer" else None,
            json_schema_extra={"enum": codes} if categorical else None,
        )
        value = Annotated[float, constraints]
        if categorical and not contiguous:
            value = Annotated[value, AfterValidator(_one_of(feature.name, codes))]
        if getattr(feature, "type", "") == "boolean":
            value = StrictBool | value
    if getattr(feature, "nullable", False):
        return Annotated[value | None, Field(description=description.strip())], None
    return Annotated[value, Field(description=description.strip())], ...


def _one_of(name: str, codes: list[int]) -> Any:
    allowed = frozenset(codes)

    def check(value: float) -> float:
        if value not in allowed:
            raise ValueError(f"{name} must be one of the integer codes {codes}")
        return value

    return check


def _request_kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "instances" in value else "single row"


@dataclass(frozen=True)
class RequestModels:
    """The request models of one service.

    Attributes:
        row: one example (``FeatureRow``).
        single: one example and an optional ``user_id`` (``SingleRowRequest``).
        batch: ``{"instances": [...], "user_id": ...}`` (``BatchRequest``).
        request: the body of ``POST /predict``, either of the two (``PredictRequest``).
    """

    row: type[BaseModel]
    single: type[BaseModel]
    batch: type[BaseModel]
    request: type[RootModel[Any]]


def request_models(schema: FeatureSchema, max_batch_size: int) -> RequestModels:
    """The request models for ``schema`` and a batch limit of ``max_batch_size`` rows.

    Raises:
        ValueError: ``max_batch_size`` is not positive.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be positive, got {max_batch_size}")
    example: dict[str, Any] = schema.example_row()
    row: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "FeatureRow",
        __config__=ConfigDict(
            extra="forbid", strict=True, json_schema_extra={"examples": [example]}
        ),
        __doc__="One example: every feature, as its raw value.",
        **{feature.name: _field(feature) for feature in schema.features},
    )
    single: type[BaseModel] = create_model(
        "SingleRowRequest",
        __base__=row,
        __doc__="One example (every feature, as its raw value) and optionally the user's id.",
        user_id=(UserId | None, None),
    )

    class BatchRequest(BaseModel):
        """A batch of examples, predicted in one model call, and optionally the user's id."""

        model_config = ConfigDict(extra="forbid")
        instances: list[row] = Field(  # type: ignore[valid-type]
            min_length=1, max_length=max_batch_size
        )
        user_id: UserId | None = None

        @field_validator("instances", mode="before")
        @classmethod
        def _limit(cls, value: Any) -> Any:
            # Checked before the rows are validated: an oversized batch costs nothing.
            if isinstance(value, list) and len(value) > max_batch_size:
                raise ValueError(
                    f"a batch holds at most {max_batch_size} instances, got {len(value)}"
                )
            return value

    body = Annotated[
        Annotated[BatchRequest, Tag("batch")] | Annotated[single, Tag("single row")],  # type: ignore[valid-type]
        Discriminator(_request_kind),
    ]

    class PredictRequest(RootModel[body]):
        """One example (a feature object) or a batch (``{"instances": [...]}``)."""

    return RequestModels(row, single, BatchRequest, PredictRequest)


def response_models(decision_threshold: float) -> tuple[type, TypeAdapter[Any]]:
    """The ``POST /predict`` answer (a TypedDict, cheap to serialise) and its adapter."""
    description = f"1 when probability >= {decision_threshold}, else 0."

    class Prediction(TypedDict):
        """The model's answer for one example."""

        probability: Annotated[float, Field(description="Probability of the positive class.")]
        label: Annotated[int, Field(description=description)]

    class PredictResponse(TypedDict):
        """Predictions in request order, the version of the model that made them, and
        the A/B variant it serves."""

        predictions: list[Prediction]
        model_version: str
        variant: Annotated[str, Field(description="'control' or 'treatment'.")]

    return PredictResponse, TypeAdapter(PredictResponse)


class ErrorResponse(BaseModel):
    """Why a request was refused."""

    detail: str


class Problem(BaseModel):
    """One problem of an invalid request."""

    loc: list[str | int] = Field(description='Where: ["body", "instances", 1, "autopay"].')
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """Every problem of an invalid request."""

    detail: list[Problem]


class HealthResponse(BaseModel):
    """Liveness."""

    status: str


class ReadyResponse(BaseModel):
    """Readiness: the model versions served, or why the service is not ready."""

    status: str = Field(description="'ready' or 'not ready'.")
    model_version: str | None = Field(None, description="The control model's version.")
    reason: str | None = Field(None, description="Why a model is not loaded.")
    experiment: str | None = Field(None, description="The running A/B experiment.")
    variants: dict[str, str | None] | None = Field(None, description="Version per variant.")
