"""lightsam: LightSAM and other sharpness-aware optimizers, and the study of their sensitivity."""

from lightsam.optim import (
    OPTIMIZERS,
    SAM,
    AdaGradNorm,
    AdaSAM,
    LightSAM,
    SharpnessAwareOptimizer,
    create_optimizer,
)

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "SAM",
    "AdaGradNorm",
    "AdaSAM",
    "LightSAM",
    "SharpnessAwareOptimizer",
    "__version__",
    "create_optimizer",
]
