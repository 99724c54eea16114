"""The synthesized inference function carries the digest of its settings variables: read with it, its real
environment gives the pydantic-free view, equal field by field to what ``ServingSettings`` validates."""

from __future__ import annotations

from typing import Any

import pytest

from modelserve.settings import ENV_SETTINGS_DIGEST, ServingSettings
from serving.function_settings import function_settings
from serving.settings_view import ServingSettingsView


def inference_variables(template: dict[str, Any]) -> dict[str, Any]:
    (fn,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Description", "")).startswith("modelserve inference")
    ]
    return fn["Environment"]["Variables"]


# logs sink; Firehose, KMS, hashed and redacted features; two browser origins; one origin and IAM auth
@pytest.mark.parametrize("variant", ["default", "firehose_kms_iam", "cors_waf", "iam_cors"])
def test_the_synthesized_environment_is_read_into_the_view_equal_to_the_validated_settings(synth_of, variant: str) -> None:
    variables = inference_variables(synth_of(variant).template)
    settings_names = {"MS_" + name.upper() for name in ServingSettings.model_fields}
    assert all(isinstance(variables[n], str) for n in settings_names & set(variables))  # no token among these settings
    # resource variables resolved at deploy (bucket, secrets) are not settings: the digest does not cover them
    env = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}
    assert env[ENV_SETTINGS_DIGEST].startswith("sha256:") and ";" not in env[ENV_SETTINGS_DIGEST]
    view = function_settings(env)
    assert type(view) is ServingSettingsView
    validated = ServingSettings.from_env(env)
    assert {n: getattr(view, n) for n in ServingSettings.model_fields} == validated.model_dump()
    changed = function_settings({**env, "MS_MAX_BATCH_ROWS": str(validated.max_batch_rows + 1)})
    assert type(changed) is ServingSettings  # edited after synth: validated again
