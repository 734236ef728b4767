"""Time per training step of each sharpness-aware optimizer, as a ratio to plain SGD's.

A sharpness-aware step runs two forward/backward passes, so 2.0x SGD is the floor; the goal is
at most 2.1x, i.e. the optimizer and the two-pass bookkeeping cost at most 5% of a step. Measured
through ``lightsam.step.TrainStep``, the step the training loop runs, on one fixed batch.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from benchmarks.timing import median_seconds
from lightsam import create_optimizer
from lightsam.models import create_model
from lightsam.optim import OPTIMIZERS
from lightsam.step import TrainStep

GOAL = 2.1
HPARAMS = {
    "sgd": {"lr": 0.05, "momentum": 0.9},
    "sgd_sam": {"lr": 0.05, "rho": 0.05, "momentum": 0.9},
    "asam": {"lr": 0.05, "rho": 0.5, "momentum": 0.9},
    "adasam": {"lr": 1e-3, "rho": 0.05},
    "lightsam_i": {"lr": 1.0, "rho": 0.05},
    "lightsam_ii": {"lr": 1e-2, "rho": 1e-4},
    "lightsam_iii": {"lr": 1e-3, "rho": 1e-4},
    "adam_sam": {"lr": 1e-3, "rho": 0.05},
    "adamw_sam": {"lr": 1e-3, "rho": 0.05},
    "adagrad_sam": {"lr": 1e-2, "rho": 0.05},
    "adagrad_norm_sam": {"lr": 1.0, "rho": 0.05},
    "lightsam_i_sgd": {"lr": 0.05, "rho": 0.05, "momentum": 0.9},
    "sgd_sam_decay": {"lr": 0.05, "rho": 0.05, "momentum": 0.9},
}
CASES = {  # model: (channels, image size, batch size)
    "lenet5": (1, 28, 128),
    "resnet18": (3, 32, 32),
}


def seconds_per_step(name: str, model_name: str, device: torch.device, steps: int) -> float:
    channels, size, batch = CASES[model_name]
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_channels=channels, image_size=size)
    model = model.to(device).train()
    step = TrainStep(
        model, create_optimizer(name, model.parameters(), **HPARAMS[name]), nn.CrossEntropyLoss()
    )
    x = torch.randn(batch, channels, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return median_seconds(lambda: step(x, y), device, calls=1, repeats=steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"training step, {device} ({torch.get_num_threads()} threads), torch {torch.__version__}")
    for model_name, (_, _, batch) in CASES.items():
        sgd = seconds_per_step("sgd", model_name, device, args.steps)
        print(f"\n{model_name}, batch {batch}: SGD {sgd * 1e3:.1f} ms/step")
        print(f"  {'method':<16} {'ms/step':>9} {'/ SGD':>7}  goal <= {GOAL}x")
        for name in HPARAMS:
            if name == "sgd" or not OPTIMIZERS[name].sharpness_aware:
                continue
            t = seconds_per_step(name, model_name, device, args.steps)
            mark = "ok" if t / sgd <= GOAL else "MISS"
            print(f"  {name:<16} {t * 1e3:>9.1f} {t / sgd:>6.2f}x  {mark}")


if __name__ == "__main__":
    main()
