"""How settings travel to a function as ``MS_*`` variables, without pydantic: the variable names of the
resources the stack passes, and the settings digest.

The digest: the stack validates every setting at synth (``modelserve/settings.py``) and writes the
function's section as variables (``to_env``); it also writes ``MS_SETTINGS_DIGEST``, a SHA-256 of those
variables. A function whose variables still hash to it reads them as they are (``serving/function_settings.py``)
instead of validating them again with pydantic, whose import is most of what init costs beyond the model
(docs/performance.md#cold-start). A variable edited by hand, added or removed changes the digest: the function
then validates with pydantic as without one.

Values resolved at deploy (CloudFormation tokens: the web page's origin in ``MS_CORS_ORIGINS``) cannot be
hashed at synth. They are left out of the hash and named in the digest variable (the names are hashed): the
function parses those few as plain values. What is left unchecked is a value the stack itself resolved (a
domain name CloudFront generated), or one edited by hand in the console after deploy; everything that came
from cdk.json is covered.

Imported at the function's init: no pydantic, no third-party module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

ENV_PREFIX = "MS_"
# resources the stack passes to the functions (not settings: the stack creates or places them)
ENV_BUNDLE_PATH = "MS_MODEL_BUNDLE_PATH"  # the bundle folder: relative to the asset root, or absolute (local runs)
ENV_CAPTURE_BUCKET = "MS_CAPTURE_BUCKET"
ENV_FIREHOSE_STREAM = "MS_FIREHOSE_STREAM"
ENV_HASH_SALT_SECRET = "MS_CAPTURE_HASH_SALT_SECRET_ARN"  # the salt the stack generated, when none is set
# the key request ids are signed with (serving/request_ids.py): the stack's generated secret, resolved at deploy
ENV_REQUEST_ID_KEY = "MS_REQUEST_ID_KEY"
# drift_athena=auto|on: the Athena workgroup the drift check queries in, and the captures table (database.table)
ENV_ATHENA_WORKGROUP = "MS_ATHENA_WORKGROUP"
ENV_CAPTURES_TABLE = "MS_CAPTURES_TABLE"
# browser origins the API lets call it (cors_origins and the web page's), comma-separated: the variable
# ServingSettings' ``cors_origins`` is read from (the stack adds the page's deploy-time origin)
ENV_CORS_ORIGINS = "MS_CORS_ORIGINS"
# the challenger's bundle folder in the inference asset (like MS_MODEL_BUNDLE_PATH), and its version for
# the drift check's comparison; both set by the stack only when challenger_mode is not "off"
ENV_CHALLENGER_BUNDLE_PATH = "MS_CHALLENGER_BUNDLE_PATH"
ENV_CHALLENGER_VERSION = "MS_CHALLENGER_VERSION"
# the digest of a function's settings variables, as the stack validated them (above)
ENV_SETTINGS_DIGEST = "MS_SETTINGS_DIGEST"
DIGEST_SCHEME = "sha256"


def env_name(field: str) -> str:
    """The variable a setting travels in: ``MS_`` + the field name in upper case."""
    return ENV_PREFIX + field.upper()


def _hash(environ: Mapping[str, str], names: Iterable[str], deploy_time: frozenset[str]) -> str:
    # canonical: one line per variable, sorted by name; ``NAME=value`` when set, ``NAME`` alone when its value
    # is resolved at deploy (named, not hashed), nothing when unset (so adding one changes the digest too)
    lines = []
    for name in sorted(set(names)):
        if name in deploy_time:
            lines.append(name)
        elif name in environ:
            lines.append(f"{name}={environ[name]}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def settings_digest(environ: Mapping[str, str], names: Iterable[str], is_deploy_time: Callable[[str], bool]) -> str:
    """The value of ``MS_SETTINGS_DIGEST`` for the settings variables ``names`` of ``environ`` (at synth):
    ``sha256:<hex>``, then ``;NAME`` for each variable whose value is resolved at deploy (``is_deploy_time``)."""
    names = list(names)
    deploy_time = frozenset(n for n in names if n in environ and is_deploy_time(environ[n]))
    return ";".join([f"{DIGEST_SCHEME}:{_hash(environ, names, deploy_time)}", *sorted(deploy_time)])


def verified_deploy_time_names(environ: Mapping[str, str], names: Iterable[str]) -> frozenset[str] | None:
    """At the function's init: the variables resolved at deploy when ``environ`` carries ``MS_SETTINGS_DIGEST``
    and its settings variables ``names`` still hash to it (every other one is a value synth validated);
    None when the digest is absent or differs (validate them)."""
    scheme, _, rest = environ.get(ENV_SETTINGS_DIGEST, "").partition(":")
    if scheme != DIGEST_SCHEME:
        return None
    expected, *listed = rest.split(";")
    deploy_time = frozenset(listed)
    names = list(names)
    if not deploy_time <= set(names) or _hash(environ, names, deploy_time) != expected:
        return None
    return deploy_time
