"""lightsam: LightSAM and other sharpness-aware optimizers, and the study of their sensitivity.

``import lightsam`` needs only torch: the optimizers, the two-pass step for your own loop
(``TrainStep``, ``frozen_batchnorm_statistics``) and the memory measurement. The study (the
``lightsam`` command, ``lightsam.train``, the data, models and figures) needs the ``study``
extra: ``pip install 'lightsam[study]'``.
"""

from lightsam.optim import (
    ASCENTS,
    OPTIMIZERS,
    SAM,
    AdaGradNorm,
    AdaSAM,
    LightSAM,
    OptimizerMemory,
    SharpnessAware,
    SharpnessAwareOptimizer,
    create_optimizer,
    method_memory,
    optimizer_memory,
)
from lightsam.step import TrainStep, frozen_batchnorm_statistics

__version__ = "0.1.0"

__all__ = [
    "ASCENTS",
    "OPTIMIZERS",
    "SAM",
    "AdaGradNorm",
    "AdaSAM",
    "LightSAM",
    "OptimizerMemory",
    "SharpnessAware",
    "SharpnessAwareOptimizer",
    "TrainStep",
    "__version__",
    "create_optimizer",
    "frozen_batchnorm_statistics",
    "method_memory",
    "optimizer_memory",
]
