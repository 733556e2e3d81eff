"""What a curation run did: per-filter steps and the run's report (read by the pipeline and the HTML report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CurateReport", "Step"]


@dataclass
class Step:
    """One filter's effect: samples that reached it, that it rejected, and that went on."""

    filter: str
    reached: int
    rejected: int
    kept: int
    seconds: float = 0.0


@dataclass
class CurateReport:
    pool: str
    format: str
    out: str
    model: str
    samples: int
    kept: int
    steps: list[Step]
    shards: int
    shards_scored_now: int
    shards_reused: int
    failed_shards: dict[str, str]
    seconds: float
    decisions: str
    report_html: str | None
    stage_seconds: dict[str, float] = field(default_factory=dict)  # score, load, decide, write, report
    nothing_kept: str | None = None  # when no sample was kept: which filter removed the most, what would keep some

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "samples_per_second": round(self.samples_per_second, 1)}
