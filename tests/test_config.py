from __future__ import annotations

from pathlib import Path

import pytest

from lightsam.config import ConfigError, apply_overrides, from_dict, load_spec

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))

BASE = {
    "dataset": "mnist5k",
    "model": "lenet5",
    "epochs": 2,
    "batch_size": 64,
    "optimizer": {"name": "lightsam_i", "lr": 0.1, "rho": 0.05},
}


def with_changes(**changes):
    return apply_overrides(BASE, [f"{k.replace('__', '.')}={v}" for k, v in changes.items()])


@pytest.mark.parametrize("spec", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_spec_is_valid(spec):
    config = load_spec(spec)
    assert config.run_id() == load_spec(spec).run_id()


def test_the_papers_settings_have_specs():
    names = {p.stem for p in EXPERIMENTS}
    assert {
        "mnist5k_lenet",
        "mnist_lenet",
        "cifar10_resnet18",
        "cifar10_wrn28_10",
        "cifar100_resnet18",
        "cifar100_wrn28_10",
        "imagenet_vit",
    } <= names


def test_overrides_are_typed_and_reach_nested_fields():
    config = from_dict(
        apply_overrides(
            BASE,
            [
                "epochs=5",
                "optimizer.rho=1e-3",
                "optimizer.name=lightsam_iii",
                "optimizer.hparams.betas=[0.8, 0.99]",
                "grad_clip=null",
                "lr_schedule=step",
                "lr_milestones=[2, 4]",
            ],
        )
    )
    assert config.epochs == 5 and config.optimizer.rho == 1e-3
    assert config.optimizer.kwargs() == {"lr": 0.1, "rho": 1e-3, "betas": [0.8, 0.99]}
    assert config.lr_milestones == (2, 4)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer__rho": -0.1}, "rho"),
        ({"optimizer__lr": 0}, "lr"),
        ({"optimizer__name": "lightsam_iv"}, "optimizer.name must be one of .*lightsam_iii"),
        ({"model": "resnet50"}, "model must be one of .*wrn28_10"),
        ({"dataset": "svhn"}, "dataset must be one of .*cifar100"),
        ({"epochs": "three"}, "epochs must be int"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 1.5}, "batch_size must be int"),
        ({"learning_rate": 0.1}, "unknown key.*learning_rate.*valid keys"),
        ({"optimizer__momentun": 0.9}, "unknown key.*momentun"),
        ({"optimizer__hparams__momentun": 0.9}, "momentun"),
        ({"optimizer__hparams__betas": "[0.9, 1.0]"}, "betas"),
        ({"precision": "fp16"}, "bf16"),
        ({"lr_schedule": "linear"}, "lr_schedule must be one of constant, cosine, step"),
        ({"lr_schedule": "step"}, "lr_milestones"),
        ({"augment": "mixup"}, "augment must be one of"),
        ({"grad_clip": -1}, "grad_clip"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"optimizer__name": "sgd"}, "rho is not a hyperparameter of 'sgd'"),
        ({"accumulation": 0}, "accumulation must be >= 1"),
        ({"accumulation": 1.5}, "accumulation must be int"),
        ({"perturbation": "m"}, "perturbation must be one of global, local"),
        ({"sync_batchnorm": 1}, "sync_batchnorm must be bool"),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(with_changes(**changes))


def test_a_sharpness_aware_optimizer_needs_rho():
    data = with_changes()
    del data["optimizer"]["rho"]
    with pytest.raises(ConfigError, match=r"optimizer\.rho is required"):
        from_dict(data)


def test_run_id_depends_on_what_is_computed_not_where():
    config = from_dict(BASE)
    assert config.replace(device="cpu", channels_last=True).run_id() == config.run_id()
    assert config.replace(num_workers=0).run_id() != config.run_id()  # ImageFolder augmentation
    assert config.replace(seed=1).run_id() != config.run_id()
    changed = from_dict(with_changes(optimizer__rho=0.06))
    assert changed.run_id() != config.run_id()


def test_data_parallel_settings_are_read_from_overrides():
    def settings(config):
        return config.accumulation, config.perturbation, config.sync_batchnorm

    changed = with_changes(accumulation=4, perturbation="local", sync_batchnorm="true")
    assert settings(from_dict(changed)) == (4, "local", True)
    assert settings(from_dict(BASE)) == (1, "global", False)


@pytest.mark.parametrize(
    "change", [{"accumulation": 2}, {"perturbation": "local"}, {"sync_batchnorm": True}]
)
def test_data_parallel_settings_belong_to_the_run_identity(change):
    config = from_dict(BASE)
    assert config.replace(**change).run_id() != config.run_id()


def test_runs_stored_before_the_data_parallel_settings_keep_their_ids():
    # The id of BASE before accumulation, perturbation and sync_batchnorm existed: at their
    # defaults they are left out of the identity, so existing run directories still match.
    config = from_dict(BASE)
    assert config.run_id() == "ce07db87e50ecee0"
    assert not {"accumulation", "perturbation", "sync_batchnorm"} & config.identity().keys()


def test_unreadable_spec_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_spec(tmp_path / "list.yaml")
