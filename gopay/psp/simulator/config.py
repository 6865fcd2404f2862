"""How one simulator runs: where its books are, whom it calls, its faults, fees and clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gopay.psp.simulator.delivery import RetryPolicy
from gopay.psp.simulator.faults import Faults
from gopay.psp.simulator.fees import DEFAULT_FEES, FeeRule, fee_schedule
from gopay.settings import Settings


@dataclass(frozen=True)
class SimulatorConfig:
    database: Path
    api_key: str
    webhook_url: str
    webhook_secret: str = field(repr=False)
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None
    fees: dict[str, FeeRule] = field(default_factory=lambda: dict(DEFAULT_FEES))
    dispute_delay: float = 3.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Settings, *, database: Path | None = None,
                      faults: Faults | None = None, seed: int | None = None) -> SimulatorConfig:
        """The configuration GOPAY_* variables give, with the command line's options over it."""
        return cls(
            database=database or settings.psp_sim_database or settings.var_dir / "psp-sim.sqlite3",
            api_key=settings.psp_key, webhook_url=settings.psp_webhook_url,
            webhook_secret=settings.psp_signing_secret,
            faults=faults or Faults.model_validate(settings.psp_sim_faults),
            seed=settings.psp_sim_seed if seed is None else seed,
            fees=fee_schedule(settings.psp_sim_fees), dispute_delay=settings.psp_sim_dispute_delay)
