"""What the two before-labels estimates share: each estimated metric against a band from its own noise
at the window's size (CBPE's accuracy, F1 and AUC in :mod:`monitoring.estimated_performance`, DLE's MAE
and RMSE in :mod:`monitoring.estimated_loss`), and one verdict over them, withheld on a small window."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from .check_protocol import PRIORITY_PERFORMANCE, Finding, Verdict


class BandedEstimate(Protocol):
    """One estimate: how far it moved the bad way (a drop in accuracy, a rise in error) and how far it may."""

    @property
    def metric(self) -> str: ...

    @property
    def worsening(self) -> float: ...

    @property
    def allowed_worsening(self) -> float: ...

    @property
    def breached(self) -> bool: ...

    def text(self, band_sd: float) -> str: ...


E = TypeVar("E", bound=BandedEstimate)


class BandedEstimates(Generic[E]):
    """The verdict, verdict rows and findings of a result holding ``n_rows``, ``min_rows``, ``band_sd``
    and ``estimates``; the result adds what it says of its rows (:meth:`rows_text`)."""

    n_rows: int
    min_rows: int
    band_sd: float
    estimates: tuple[E, ...]

    def rows_text(self) -> str:
        return f" on {self.n_rows} unlabelled rows"

    @property
    def degraded(self) -> bool | None:
        """None below ``min_rows`` (no verdict), else whether any estimate left its band."""
        return None if self.n_rows < self.min_rows else any(e.breached for e in self.estimates)

    def verdicts(self) -> list[Verdict]:
        suffix = self.rows_text()
        if self.degraded is None:
            suffix += f"; < {self.min_rows} rows, no verdict"
        return [
            Verdict(
                f"estimated_performance[{e.metric}]",
                e.worsening,
                None,
                e.allowed_worsening,
                None if self.degraded is None else e.breached,
                e.text(self.band_sd) + suffix,
            )
            for e in self.estimates
        ]

    def findings(self) -> list[Finding]:
        return [
            Finding(e.text(self.band_sd) + f", before labels, on {self.n_rows} rows", PRIORITY_PERFORMANCE)
            for e in self.estimates
            if self.degraded and e.breached
        ]
