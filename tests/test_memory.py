"""The memory of every registered optimizer, measured from its state, against what ALGORITHMS.md
says each keeps: floats per parameter beyond the weights and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightsam import OPTIMIZERS, TrainStep, create_optimizer, method_memory, optimizer_memory

# (statistics, of which the ascent's, saved weights) per parameter, from the update rules.
EXPECTED = {
    "sgd": (1, 0, 0),  # momentum
    "adam": (2, 0, 0),  # m, v
    "adamw": (2, 0, 0),
    "adagrad": (1, 0, 0),  # the sum of squares
    "adagrad_norm": (0, 0, 0),  # one scalar
    "sgd_sam": (1, 0, 1),  # momentum; SAM's ascent keeps nothing; x_t
    "asam": (1, 0, 1),
    "adasam": (3, 0, 1),  # m, v, v_hat
    "lightsam_i": (0, 0, 1),  # u and v are scalars
    "lightsam_ii": (2, 1, 1),  # u, v
    "lightsam_iii": (4, 2, 1),  # r, u, m, v
    "adam_sam": (2, 0, 1),
    "adamw_sam": (2, 0, 1),
    "adagrad_sam": (1, 0, 1),
    "adagrad_norm_sam": (0, 0, 1),
    "lightsam_i_sgd": (1, 0, 1),  # u is a scalar; SGD's momentum
    "sgd_sam_decay": (1, 0, 1),  # the step count is a scalar
}
MOMENTUM = {"sgd", "sgd_sam", "asam", "lightsam_i_sgd", "sgd_sam_decay"}


def test_every_registered_optimizer_has_an_expected_value():
    assert set(EXPECTED) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_measured_memory_is_what_the_update_rules_keep(name):
    memory = method_memory(name, **({"momentum": 0.9} if name in MOMENTUM else {}))
    statistics, ascent, saved = EXPECTED[name]
    assert (memory.statistics, memory.ascent_statistics, memory.saved_weights) == (
        statistics,
        ascent,
        saved,
    )
    assert memory.per_parameter == statistics + saved
    floats = memory.per_parameter * memory.parameters
    assert memory.total_bytes == 4 * floats + memory.scalar_bytes  # float32 state
    assert memory.scalar_bytes < 100  # step counts and global sums: not per coordinate


def test_sgd_without_momentum_keeps_nothing_and_sam_around_it_the_weights():
    assert method_memory("sgd").per_parameter == 0
    assert method_memory("sgd_sam").per_parameter == 1


def test_the_statistics_of_half_precision_weights_count_as_float32():
    model = nn.Linear(8, 8).to(torch.bfloat16)
    optimizer = create_optimizer("lightsam_ii", model.parameters(), lr=1e-2, rho=1e-3)
    TrainStep(model, optimizer, nn.MSELoss())(torch.randn(4, 8).bfloat16(), torch.randn(4, 8))
    memory = optimizer_memory(optimizer)
    # u, v in float32 and the saved weights in bfloat16, per parameter.
    assert memory.total_bytes == memory.parameters * (2 * 4 + 2)
