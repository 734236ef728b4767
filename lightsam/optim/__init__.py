"""Sharpness-aware optimizers as drop-in ``torch.optim`` optimizers."""

from lightsam.optim.adagrad_norm import AdaGradNorm
from lightsam.optim.adasam import AdaSAM
from lightsam.optim.base import SharpnessAwareOptimizer
from lightsam.optim.lightsam import VARIANTS, LightSAM
from lightsam.optim.memory import OptimizerMemory, method_memory, optimizer_memory
from lightsam.optim.registry import OPTIMIZERS, create_optimizer, optimizer_entry
from lightsam.optim.rules import ASCENTS
from lightsam.optim.sam import SAM, SharpnessAware

__all__ = [
    "ASCENTS",
    "OPTIMIZERS",
    "SAM",
    "VARIANTS",
    "AdaGradNorm",
    "AdaSAM",
    "LightSAM",
    "OptimizerMemory",
    "SharpnessAware",
    "SharpnessAwareOptimizer",
    "create_optimizer",
    "method_memory",
    "optimizer_entry",
    "optimizer_memory",
]
