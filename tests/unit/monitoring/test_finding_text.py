"""Finding text says what moved, by how much, and against what: a statistic against its threshold and
a p-value against the level it was tested at, never a statistic printed against an alpha."""

from __future__ import annotations

import re

from devtools import synthetic as syn
from monitoring import DriftChecker, DriftConfig
from monitoring.check_protocol import Verdict, verdict_findings


def test_a_verdict_without_its_own_findings_says_its_statistic_against_its_threshold_and_p_apart() -> None:
    (with_p,) = verdict_findings([Verdict("toy", 5.713, 0.0004, 0.05, True, "on 300 rows")])
    assert with_p.text == "toy 5.713 > threshold 0.05 (p = 0.0004; on 300 rows)"
    (without_p,) = verdict_findings([Verdict("PCA reconstruction ratio", 1.31, None, 1.1, True, "window error 2.1 vs reference 1.6")])
    assert without_p.text == "PCA reconstruction ratio 1.31 > threshold 1.1 (window error 2.1 vs reference 1.6)"
    assert verdict_findings([Verdict("quiet", 0.2, 0.5, 1.1, False)]) == []


def test_a_drifted_feature_says_its_effect_against_its_gate_and_p_against_the_corrected_level(profile, rng) -> None:
    checker = DriftChecker(profile, DriftConfig(mmd_enabled=False))
    table = syn.make_table(3000, rng)
    table["num_skew"] = table["num_skew"] + 0.5 * float(checker.profile["num_skew"].scale)
    report = checker.check(table, syn.make_predictions(table, rng, checker.profile.outputs.task))
    text = next(f.text for f in report.findings if f.feature == "num_skew")
    pattern = r"num_skew shifted: effect 0\.\d+ \(wasserstein_sd\) >= threshold 0\.\d+, p = [\d.e-]+ < 0\.05 corrected"
    assert re.fullmatch(pattern, text), text
