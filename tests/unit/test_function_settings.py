"""The inference function reads its settings without pydantic when they are what the stack validated at synth.

The view (serving/settings_view.py) is generated from ``ServingSettings``; with a matching digest the function
reads the variables into it, equal field by field to what pydantic would build; without a digest, or with a
variable changed since synth, pydantic validates them as before and refuses a wrong value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from devtools.settings_view import VIEW_PY, view_module
from modelserve.settings import ENV_SETTINGS_DIGEST, ServingSettings, SettingsError
from modelserve.settings_env import env_name, settings_digest
from serving.function_settings import function_settings
from serving.settings_view import ServingSettingsView

NAMES = [env_name(field) for field in ServingSettings.model_fields]

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "every kind of field": {
        "capture_sink": "s3",
        "redact_features": ["is_adult"],
        "hash_features": ["island", "sex"],
        "max_batch_rows": 50,
        "capture_sampling": 0.25,
        "capture_mode": "sync",
        "capture_hash_salt": "a-salt-of-sixteen-chars",
        "cors_origins": ["https://app.example.com", "http://localhost:5173"],
        "challenger_mode": "ab",
        "ab_share": 0.1,
        "capture_explanations": True,
        "explain_capture_fraction": 0.5,
        "stage_name": "staging_2",
    },
}


def synthesized(settings: ServingSettings, deploy_time: frozenset[str] = frozenset()) -> dict[str, str]:
    """The variables the stack writes for ``settings``: ``to_env`` and their digest (cdk/serving.py)."""
    env = {**settings.to_env(), "MS_MODEL_BUNDLE_PATH": "bundle", "AWS_REGION": "eu-west-1"}
    env[ENV_SETTINGS_DIGEST] = settings_digest(env, NAMES, lambda value: value in {env[n] for n in deploy_time})
    return env


def fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in ServingSettings.model_fields}


def test_the_committed_view_is_what_the_generator_writes_from_serving_settings_now() -> None:
    # out of date: python -m devtools.settings_view --write
    assert VIEW_PY.read_text() == view_module()
    assert [f.name for f in dataclasses.fields(ServingSettingsView)] == list(ServingSettings.model_fields)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_settings_matching_their_digest_are_read_into_the_view_equal_to_pydantics(variant: str) -> None:
    env = synthesized(ServingSettings(**VARIANTS[variant]))
    view = function_settings(env)
    assert type(view) is ServingSettingsView
    validated = ServingSettings.from_env(env)
    assert fields(view) == fields(validated)
    for name, value in fields(view).items():  # same types too: 1 == 1.0 == True would hide a wrong parser
        assert type(value) is type(getattr(validated, name)), name


@pytest.mark.parametrize(
    "edit",
    [
        {"MS_MAX_BATCH_ROWS": "0"},  # changed after synth (and invalid)
        {"MS_CAPTURE_SAMPLING": "2"},
        {"MS_STAGE_NAME": "not a stage!"},
    ],
)
def test_a_variable_changed_after_synth_is_validated_by_pydantic_and_refused(edit: Mapping[str, str]) -> None:
    env = {**synthesized(ServingSettings(**VARIANTS["every kind of field"])), **edit}
    (name,) = edit
    with pytest.raises(SettingsError, match=name.removeprefix("MS_").lower()):
        function_settings(env)


def test_a_valid_change_after_synth_or_no_digest_gives_the_validated_settings() -> None:
    env = synthesized(ServingSettings(max_batch_rows=50))
    changed = function_settings({**env, "MS_MAX_BATCH_ROWS": "60"})
    assert type(changed) is ServingSettings and changed.max_batch_rows == 60
    removed = function_settings({k: v for k, v in env.items() if k != "MS_MAX_BATCH_ROWS"})
    assert type(removed) is ServingSettings and removed.max_batch_rows == 1000
    added = function_settings({**env, "MS_CAPTURE_HASH_SALT": "a-salt-added-by-hand"})  # unset at synth
    assert type(added) is ServingSettings and added.capture_hash_salt == "a-salt-added-by-hand"
    local = function_settings({k: v for k, v in env.items() if k != ENV_SETTINGS_DIGEST})
    assert type(local) is ServingSettings and local.max_batch_rows == 50
    other_scheme = function_settings({**env, ENV_SETTINGS_DIGEST: "md5:" + env[ENV_SETTINGS_DIGEST].partition(":")[2]})
    assert type(other_scheme) is ServingSettings


def test_a_deploy_time_value_is_named_not_hashed_and_read_plainly() -> None:
    # at synth the web page's origin is a token: the digest names MS_CORS_ORIGINS and leaves its value out
    env = synthesized(ServingSettings(cors_origins=["https://app.example.com"]), deploy_time=frozenset({"MS_CORS_ORIGINS"}))
    assert env[ENV_SETTINGS_DIGEST].endswith(";MS_CORS_ORIGINS")
    deployed = {**env, "MS_CORS_ORIGINS": "https://app.example.com,https://d111111abcdef8.cloudfront.net"}
    view = function_settings(deployed)
    assert type(view) is ServingSettingsView
    assert view.cors_origins == ("https://app.example.com", "https://d111111abcdef8.cloudfront.net")
    assert fields(view) == fields(ServingSettings.from_env(deployed))
    # the list of deploy-time names is hashed: dropping a name from it falls back to pydantic
    dropped = {**deployed, ENV_SETTINGS_DIGEST: env[ENV_SETTINGS_DIGEST].removesuffix(";MS_CORS_ORIGINS")}
    assert type(function_settings(dropped)) is ServingSettings
    # and the other variables are still covered
    assert type(function_settings({**deployed, "MS_AB_SHARE": "0.5"})) is ServingSettings
