"""Two versions of one model served side by side (docs/versions.md): what makes a challenger
bundle acceptable next to the champion, and the documented A/B assignment of a client to a variant.

Shared: the stack refuses an incompatible challenger at synth, the inference function at init, and
the demo and tests compute the same assignment as the function.
"""

from __future__ import annotations

import hashlib

from .schema import BundleManifest, Task

CHAMPION = "champion"
CHALLENGER = "challenger"
VARIANTS = (CHAMPION, CHALLENGER)
CLIENT_ID_HEADER = "x-client-id"
ASSIGNMENT_BUCKETS = 10_000  # the A/B share is honoured to 1/10,000


class IncompatibleChallenger(ValueError):
    """The challenger cannot serve the champion's requests, or its captures would mix with the champion's."""


def compatibility_problems(champion: BundleManifest, challenger: BundleManifest) -> list[str]:
    """Why ``challenger`` cannot run next to ``champion`` (empty: it can).

    The same model name (feedback is filed by model name and joins to either version by request id),
    another version (captures are filed by version), the same task and classes (answers and
    labels compare), and the same features with the same kinds: a request valid for one is valid
    for the other. Category lists, ranges and dtypes may differ: the champion validates the
    request and the challenger scores the same validated columns.
    """
    problems = []
    if challenger.model_name != champion.model_name:
        problems.append(f"model name {challenger.model_name!r} is not the champion's {champion.model_name!r}")
    if challenger.version == champion.version:
        problems.append(f"version {challenger.version!r} is the champion's: deploy a different model, or no challenger")
    if challenger.outputs.task is not champion.outputs.task:
        problems.append(f"task {challenger.outputs.task.value!r} is not the champion's {champion.outputs.task.value!r}")
    elif champion.outputs.task is Task.CLASSIFICATION and set(challenger.outputs.classes) != set(champion.outputs.classes):
        problems.append(f"classes {list(challenger.outputs.classes)} are not the champion's {list(champion.outputs.classes)}")
    theirs = {f.name: f.kind for f in challenger.features}
    ours = {f.name: f.kind for f in champion.features}
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing:
        problems.append(f"features {missing} of the champion are missing")
    if extra:
        problems.append(f"features {extra} are not the champion's")
    for name in sorted(set(ours) & set(theirs)):
        if ours[name] is not theirs[name]:
            problems.append(f"feature {name!r} is {theirs[name].value}, the champion's is {ours[name].value}")
    return problems


def check_compatible(champion: BundleManifest, challenger: BundleManifest) -> None:
    """Raise ``IncompatibleChallenger`` naming every problem (see ``compatibility_problems``)."""
    problems = compatibility_problems(champion, challenger)
    if problems:
        raise IncompatibleChallenger(
            f"the challenger bundle {challenger.model_name} {challenger.version} cannot run next to the champion "
            f"{champion.model_name} {champion.version}: " + "; ".join(problems)
        )


def assignment_bucket(key: str, salt: str) -> int:
    """``int(sha256(salt + ":" + key)[:16 hex digits], 16) mod 10,000``: the same key always gets the
    same bucket; different salts give independent assignments."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()
    return int(digest[:16], 16) % ASSIGNMENT_BUCKETS


def ab_variant(key: str, share: float, salt: str) -> str:
    """The variant answering ``key`` (a client id, else a request id) when the challenger answers ``share``
    of keys: the challenger when the key's bucket is below ``round(share * 10,000)``.

    The salt is the challenger's version: a new challenger reshuffles who sees it, and raising the
    share of one challenger only adds clients (a client on the challenger stays there).
    """
    return CHALLENGER if assignment_bucket(key, salt) < round(share * ASSIGNMENT_BUCKETS) else CHAMPION
