"""Question validation: the validators themselves, and copier rejecting bad answers."""

from __future__ import annotations

from pathlib import Path

import copier
import pytest

from mlgen.answers import MODEL_NAME_MAX, VALIDATORS, validate_answers
from mlgen.errors import AnswerError
from mlgen.template import question_names

VALID = {
    "model_name": ["churn", "fraud-score", "m1", "a" * MODEL_NAME_MAX],
    "package_name": ["churn", "fraud_score", "_private", "m1"],
    "description": ["Predicts churn.", "Uses 'quotes' and \"double quotes\" and \\ too"],
    "k8s_namespace": ["ml-serving", "default2"],
    "canary_weight_percent": [1, 5, "10", 50],
    "latency_slo_p95_ms": [0.5, 100, "250"],
    "error_rate_slo": [0.001, "0.05", 0.999],
    "delivery": ["argo-rollouts", "kustomize"],
    "model_framework": ["sklearn", "lightgbm", "xgboost", "pytorch", "tensorflow"],
    "observation_window_minutes": [5, 60, "90", 1440],
    "min_roc_auc": [0.6, "0.75", 1],
    "psi_threshold": [0.1, 0.2, "0.25"],
    "ks_pvalue_threshold": [0.01, 0.05, "0.1"],
    "retrain_schedule": ["0 3 * * 1", "*/15 * * * *", "0 0 1,15 * 1-5", "30 2 * * 0"],
    "retrain_min_new_rows": [1, 5000, "20000"],
    "materialize_schedule": ["15 * * * *", "*/30 * * * *"],
    "training_cpu": ["2", "0.5", "500m", 4],
    "training_memory": ["4Gi", "512Mi"],
    "data_source": ["", "data/events.parquet", "s3://bucket/penguins.csv", "data/my table.csv.gz"],
    "label_column": ["churned", "species is Adelie"],
    "positive_class": ["1", "Adelie", 1],
    "entity_column": ["", "customer_id"],
    "timestamp_column": ["", "event time"],
    "feature_schema": [
        {"features": [{"name": "x", "type": "number", "minimum": 0, "maximum": 1}]},
        {
            "features": [{"name": "sex", "type": "category", "levels": ["f", "m"]}],
            "example": {"sex": "f"},
        },
    ],
}

INVALID = {
    "model_name": [
        "",
        "Churn",
        "fraud_score",
        "1model",
        "-model",
        "model-",
        "a/b",
        "..",
        "a" * (MODEL_NAME_MAX + 1),
    ],
    "package_name": ["class", "import", "Fraud", "fraud-score", "1abc", "a/b", "..", "match"],
    "description": [
        "{{ 7 * 7 }}",
        "{% include '/etc/passwd' %}",
        "two\nlines",
        "x" * 301,
        "bell\x07",
        "del\x7f",
    ],
    "k8s_namespace": ["ML", "ns_1", ""],
    "canary_weight_percent": [0, 51, 101, -5, "abc", 2.5, True],
    "latency_slo_p95_ms": [0, -1, "fast", "nan", 1e9],
    "error_rate_slo": [0, 1, 1.5, "x"],
    "delivery": ["argo", "Kustomize", "", None],
    "model_framework": ["scikit-learn", "torch", "LightGBM", "", None],
    "observation_window_minutes": [0, 4, 1441, "an hour", 2.5, True],
    "min_roc_auc": [0.5, 0.3, 1.01, "high"],
    "psi_threshold": [0, -0.1, "inf"],
    "ks_pvalue_threshold": [0, 1, "p"],
    "retrain_schedule": [
        "weekly",
        "0 3 * *",
        "60 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "*/0 * * * *",
        "0 3 * * 8",
    ],
    "retrain_min_new_rows": [0, -1, "many", 2.5, True],
    "materialize_schedule": ["hourly", "0 3 * *"],
    "training_cpu": ["two", "0", "2 cores", "-1", "1.5m", True],
    "training_memory": ["4GB", "4", "0Gi", "lots", True],
    "data_source": ["data/table.xlsx", "two\nlines", "{{ 7 }}.csv"],
    "label_column": ["", "a\nb"],
    "positive_class": [""],
    "entity_column": ["{{ x }}"],
    "timestamp_column": ["bell\x07"],
    "feature_schema": [
        "x",
        {"features": []},
        {"features": [{"name": "x", "type": "text", "minimum": 0, "maximum": 1}]},
        {"features": [{"name": "x", "type": "number"}]},
        {"features": [{"name": "x", "type": "number", "minimum": 0, "maximum": 1}], "y": 1},
    ],
}


def test_every_validated_field_is_a_template_question(template_root: Path) -> None:
    assert set(VALIDATORS) <= set(question_names(template_root))
    assert set(VALID) == set(INVALID) == set(VALIDATORS)


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in VALID.items() for v in values]
)
def test_valid_answers_pass(field: str, value: object) -> None:
    validate_answers({field: value})


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in INVALID.items() for v in values]
)
def test_invalid_answers_name_the_field(field: str, value: object) -> None:
    with pytest.raises(AnswerError) as caught:
        validate_answers({field: value})
    assert str(caught.value).startswith(f"{field}: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_name", "Bad_Name"),
        ("package_name", "class"),
        ("k8s_namespace", "Prod"),
        ("canary_weight_percent", "0"),
        ("latency_slo_p95_ms", "-5"),
        ("error_rate_slo", "2"),
        ("observation_window_minutes", "3"),
        ("psi_threshold", "0"),
        ("ks_pvalue_threshold", "1"),
        ("retrain_schedule", "every week"),
        ("retrain_min_new_rows", "0"),
        ("training_memory", "4GB"),
        ("description", "{{ cycler.__init__.__globals__ }}"),
    ],
)
def test_copier_itself_rejects_invalid_answers_naming_the_question(
    template_root: Path, tmp_path: Path, field: str, value: str
) -> None:
    destination = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"question '{field}'"):
        copier.run_copy(
            str(template_root),
            destination,
            {field: value},
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref="HEAD",
        )
    assert not destination.exists()


def test_questions_added_later_keep_an_existing_repositorys_behaviour(template_root: Path) -> None:
    """An update fills a question the repository predates with the behaviour-keeping answer
    (an old repository keeps its kustomize canary), never over what it or -d says."""
    from mlgen.generate import check_answers
    from mlgen.template import KEEP_BEHAVIOUR_ANSWERS, answers_for_update

    check_answers(KEEP_BEHAVIOUR_ANSWERS, template_root)  # real questions, valid answers
    old = {"model_name": "churn"}
    assert answers_for_update(old, {})["delivery"] == "kustomize"
    assert (
        answers_for_update({**old, "delivery": "argo-rollouts"}, {})["delivery"] == "argo-rollouts"
    )
    assert answers_for_update(old, {"delivery": "argo-rollouts"})["delivery"] == "argo-rollouts"
