"""lightsam: LightSAM and other sharpness-aware optimizers, and the study of their sensitivity."""

from lightsam.optim import (
    ASCENTS,
    OPTIMIZERS,
    SAM,
    AdaGradNorm,
    AdaSAM,
    LightSAM,
    SharpnessAware,
    SharpnessAwareOptimizer,
    create_optimizer,
)

__version__ = "0.1.0"

__all__ = [
    "ASCENTS",
    "OPTIMIZERS",
    "SAM",
    "AdaGradNorm",
    "AdaSAM",
    "LightSAM",
    "SharpnessAware",
    "SharpnessAwareOptimizer",
    "__version__",
    "create_optimizer",
]
