"""Adam's step size for one model, absolute or relative to the model's token norms, and
what a run records of it (the summary reads it too, so this imports nothing heavy)."""

from dataclasses import dataclass
from typing import Any

from inputspace.errors import InputspaceError


@dataclass(frozen=True)
class StepSize:
    """Adam's step size for one model: the config's lr, or its lr_relative times the
    median input-embedding norm of the model's regular tokens."""

    lr: float
    relative: float | None = None
    median_token_norm: float | None = None

    @classmethod
    def of(cls, optimize: dict[str, Any], median_token_norm: float | None) -> "StepSize":
        if "lr_relative" not in optimize:
            return cls(optimize["lr"])
        if median_token_norm is None:
            raise InputspaceError(
                "lr_relative needs the model's median token norm (its vocabulary table)"
            )
        relative = optimize["lr_relative"]
        return cls(relative * median_token_norm, relative, median_token_norm)

    @classmethod
    def recorded(cls, optimize: dict[str, Any], run_info: dict[str, Any]) -> "StepSize":
        """The step a run took: resolved in its record (`record`), else the config's lr."""
        if "lr" in run_info:
            return cls(run_info["lr"], run_info["lr_relative"], run_info["median_token_norm"])
        return cls.of(optimize, None)

    def record(self) -> dict[str, float]:
        """What a run's metadata holds of it: nothing for an absolute lr (the config has it,
        and a run of an unchanged config stays byte-identical), else how it was resolved."""
        if self.relative is None:
            return {}
        return {
            "lr": self.lr,
            "lr_relative": self.relative,
            "median_token_norm": self.median_token_norm,
        }

    def describe(self) -> str:
        if self.relative is None:
            return f"{self.lr:.4g}"
        return (
            f"{self.lr:.4g} (lr_relative {self.relative:g} x median token norm "
            f"{self.median_token_norm:.4g})"
        )
