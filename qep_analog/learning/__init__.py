"""Learning layer: objectives, QEP gradient estimators, the local update rule and the trainer."""

from qep_analog.learning.gradient import (
    ESTIMATORS,
    GradientConfig,
    GradientEstimate,
    estimate_gradient,
    measurement_plan,
)
from qep_analog.learning.objectives import Objective

__all__ = ["ESTIMATORS", "GradientConfig", "GradientEstimate", "Objective", "estimate_gradient",
           "measurement_plan"]
