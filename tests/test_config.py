from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lightsam.config import (
    SCHEMA,
    Config,
    ConfigError,
    Runtime,
    added_later,
    apply_overrides,
    from_dict,
    load_spec,
    yaml_load,
)
from lightsam.optim import OPTIMIZERS

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
    kwargs = config.optimizer.kwargs()
    assert (kwargs["lr"], kwargs["rho"], kwargs["betas"]) == (0.1, 1e-3, (0.8, 0.99))
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
        ({"precision": "fp8"}, "precision must be one of fp32, bf16, fp16"),
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
        ({"probe_size": -1}, "probe_size must be >= 0"),
        ({"probe_steps": "[3]"}, "probe_steps needs the probe: set probe_size > 0"),
        ({"probe_size": 10, "probe_steps": "[6, 3]"}, "probe_steps must be increasing step"),
        ({"probe_size": 10, "probe_steps": "[3, 3]"}, "probe_steps must be increasing step"),
        ({"probe_size": 10, "probe_steps": "[0, 3]"}, r"step counts >= 1, got \[0, 3\]"),
        ({"probe_size": 10, "probe_steps": "[1.5]"}, "probe_steps"),
        ({"warmup_steps": -1}, "warmup_steps must be >= 0"),
        ({"warmup_epochs": ".nan"}, "warmup_epochs must be finite"),
        ({"warmup_epochs": 1, "warmup_steps": 10}, "warmup_epochs or as warmup_steps, not both"),
        ({"warmup_epochs": 99}, "warmup_epochs 99 is longer than the run"),
        ({"model": "timm:no_such_net"}, "timm has no such model"),
        ({"optimizer__lr": ".inf"}, r"optimizer.lr must be finite, got inf"),
        ({"optimizer__lr": ".nan"}, r"optimizer.lr must be finite, got nan"),
        ({"optimizer__rho": ".inf"}, "optimizer.rho must be finite"),
        ({"optimizer__hparams__weight_decay": ".nan"}, "optimizer.hparams.weight_decay must be"),
        ({"lr_gamma": ".nan"}, "lr_gamma must be finite"),
        ({"divergence_loss": ".inf"}, "divergence_loss must be finite"),
        ({"label_smoothing": ".nan"}, "label_smoothing must be finite"),
        ({"lr_schedule": "step", "lr_milestones": "[0]"}, r"lr_milestones must be increasing"),
        ({"lr_schedule": "step", "lr_milestones": "[3, 2]"}, r"increasing epochs in \[1, epochs"),
        ({"lr_schedule": "step", "lr_milestones": "[2, 2]"}, "lr_milestones"),
        ({"lr_schedule": "step", "lr_milestones": "[99]"}, "lr_milestones"),
        ({"dataset": "imagenet", "probe_size": 100}, "probe needs a dataset held in memory"),
        ({"divergence_loss": -1.0}, "divergence_loss must be > 0 or null"),
        ({"optimizer__hparams__eps": "abc"}, "hparams.eps must be a number, got 'abc'"),
        (
            {"optimizer__name": "lightsam_iii", "optimizer__hparams__betas": "[0.9]"},
            "hparams.betas must be a list of 2 numbers",
        ),
        ({"optimizer__hparams__betas": "[0.9, 0.99]"}, "unknown hyperparameter.*betas"),
        ({"optimizer__hparams__decoupled_weight_decay": 1}, "must be true or false"),
        ({"optimizer__hparams__foreach": "true"}, "foreach chooses an implementation"),
        ({"device": "cpu"}, r"device: where a run executes .*--device"),
        ({"channels_last": "true"}, "--channels-last"),
        ({"schema": 1}, "written under schema 1.*lightsam migrate"),
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


def test_run_id_depends_on_what_is_computed():
    config = from_dict(BASE)
    assert config.replace(num_workers=0).run_id() != config.run_id()  # ImageFolder augmentation
    assert config.replace(seed=1).run_id() != config.run_id()
    changed = from_dict(with_changes(optimizer__rho=0.06))
    assert changed.run_id() != config.run_id()
    with pytest.raises(ConfigError, match="device"):
        Runtime(device="tpu")


def test_a_stored_config_reads_back_as_the_same_run():
    config = from_dict(with_changes(optimizer__hparams__eps=1e-6))
    stored = config.to_dict()
    assert stored["schema"] == SCHEMA
    assert from_dict(stored) == config and from_dict(stored).run_id() == config.run_id()


def test_every_optimizer_argument_is_written_out_with_its_default():
    config = from_dict(BASE)
    assert config.optimizer.hparams == OPTIMIZERS["lightsam_i"].resolve({})
    assert config.identity()["optimizer"]["hparams"]["eps"] == 1e-8
    # Spelled as a default, or not at all: one run; numbers are one whatever their spelling.
    assert from_dict(with_changes(optimizer__hparams__eps=1e-8)).run_id() == config.run_id()
    assert from_dict(with_changes(optimizer__hparams__weight_decay=0)).run_id() == (config.run_id())


def test_the_identity_is_pinned():
    # A change to what the identity holds, or how it is hashed, must come with a new SCHEMA and
    # a migration (lightsam.migrate); this pin fails first.
    assert SCHEMA == 2
    assert from_dict(BASE).run_id() == "c8b9da74612dd759"


def test_every_field_is_in_the_identity_even_at_its_default():
    """All but those added later, which are in it away from their legacy value."""
    config = from_dict(BASE)
    later = {f.name for f in dataclasses.fields(Config) if "legacy" in f.metadata}
    assert later == {"probe_size", "deterministic", "warmup_epochs", "warmup_steps", "probe_steps"}
    assert (
        set(config.identity()) == {"schema"} | {f.name for f in dataclasses.fields(Config)} - later
    )
    assert "probe_size" in config.replace(probe_size=10).identity()
    assert "probe_steps" in config.replace(probe_size=10, probe_steps=(3,)).identity()
    assert config.replace(deterministic=True).run_id() != config.run_id()


@dataclasses.dataclass(frozen=True)
class Later(Config):
    """``Config`` with a field added after runs were stored, at legacy value 0.0."""

    knob: float = dataclasses.field(default=0.5, metadata=added_later(legacy=0.0))


@dataclasses.dataclass(frozen=True)
class LaterStill(Later):
    """The same field once its default has changed."""

    knob: float = dataclasses.field(default=0.7, metadata=added_later(legacy=0.0))


def later(cls, **changes):
    config = from_dict(BASE)
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)}
    return cls(**values, **changes)


def test_a_field_added_later_keeps_stored_ids_and_a_new_default_aliases_nothing():
    stored = from_dict(BASE).run_id()
    assert later(Later, knob=0.0).run_id() == stored  # the legacy value: the old computation
    assert later(Later).run_id() != stored  # its default is a new computation
    # Changing the default later: runs at the old default keep their id, new ones get another.
    assert later(LaterStill, knob=0.5).run_id() == later(Later).run_id()
    assert later(LaterStill).run_id() not in {stored, later(Later).run_id()}


def test_an_optimizer_argument_added_later_keeps_stored_ids(monkeypatch):
    stored = from_dict(BASE).run_id()
    entry = OPTIMIZERS["lightsam_i"]
    monkeypatch.setitem(OPTIMIZERS, "lightsam_i", dataclasses.replace(entry, legacy={"eps": 1e-8}))
    assert from_dict(BASE).run_id() != stored  # the hash without eps, at its legacy value
    assert "eps" not in from_dict(BASE).identity()["optimizer"]["hparams"]
    assert (
        "eps"
        in from_dict(with_changes(optimizer__hparams__eps=1e-6)).identity()["optimizer"]["hparams"]
    )
    # A stored config without the argument reads back at the legacy value, not the default.
    stored_config = from_dict(BASE).to_dict()
    del stored_config["optimizer"]["hparams"]["eps"]
    assert from_dict(stored_config).optimizer.hparams["eps"] == 1e-8


# What each registered optimizer's configuration holds. A torch release or a lightsam change that
# adds a constructor argument changes it: give the argument its legacy value in the registry
# (OptimizerEntry.legacy) so that stored runs keep their ids, then update this table.
RESOLVED = {
    "sgd": {"dampening": 0.0, "maximize": False, "momentum": 0.0, "nesterov": False,
            "weight_decay": 0.0},
    "adam": {"amsgrad": False, "betas": [0.9, 0.999], "decoupled_weight_decay": False,
             "eps": 1e-08, "maximize": False, "weight_decay": 0.0},
    "adamw": {"amsgrad": False, "betas": [0.9, 0.999], "eps": 1e-08, "maximize": False,
              "weight_decay": 0.01},
    "adagrad": {"eps": 1e-10, "initial_accumulator_value": 0.0, "lr_decay": 0.0,
                "maximize": False, "weight_decay": 0.0},
    "adagrad_norm": {"decoupled_weight_decay": False, "eps": 1e-08, "weight_decay": 0.0},
    "sgd_sam": {"dampening": 0.0, "maximize": False, "momentum": 0.0, "nesterov": False,
                "weight_decay": 0.0},
    "asam": {"asam_eta": 0.01, "dampening": 0.0, "maximize": False, "momentum": 0.0,
             "nesterov": False, "weight_decay": 0.0},
    "adasam": {"betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.0},
    "lightsam_i": {"decoupled_weight_decay": False, "eps": 1e-08, "weight_decay": 0.0},
    "lightsam_ii": {"decoupled_weight_decay": False, "eps": 1e-08, "weight_decay": 0.0},
    "lightsam_iii": {"betas": [0.9, 0.999], "bias_correction": False,
                     "decoupled_weight_decay": False, "eps": 1e-08, "weight_decay": 0.0},
    "adam_sam": {"amsgrad": False, "betas": [0.9, 0.999], "decoupled_weight_decay": False,
                 "eps": 1e-08, "maximize": False, "weight_decay": 0.0},
    "adamw_sam": {"amsgrad": False, "betas": [0.9, 0.999], "eps": 1e-08, "maximize": False,
                  "weight_decay": 0.01},
    "adagrad_sam": {"eps": 1e-10, "initial_accumulator_value": 0.0, "lr_decay": 0.0,
                    "maximize": False, "weight_decay": 0.0},
    "adagrad_norm_sam": {"decoupled_weight_decay": False, "eps": 1e-08, "weight_decay": 0.0},
    "lightsam_i_sgd": {"ascent_eps": 1e-08, "dampening": 0.0, "maximize": False,
                       "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "sgd_sam_decay": {"dampening": 0.0, "maximize": False, "momentum": 0.0, "nesterov": False,
                      "weight_decay": 0.0},
}  # fmt: skip


def test_every_registered_optimizer_resolves_to_its_pinned_arguments():
    assert {name: entry.resolve({}) for name, entry in OPTIMIZERS.items()} == RESOLVED


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


def test_unreadable_spec_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_spec(tmp_path / "list.yaml")


@pytest.mark.parametrize("override", ["epochs=[1", "optimizer.hparams={momentum: 0.9", "lr=: x"])
def test_a_malformed_override_is_a_config_error(override):
    with pytest.raises(
        ConfigError, match=f"--set {re.escape(override)}: the value is not valid YAML"
    ):
        apply_overrides(BASE, [override])


def test_a_key_given_twice_in_a_yaml_file_is_refused(tmp_path):
    spec = tmp_path / "twice.yaml"
    spec.write_text("dataset: mnist5k\nepochs: 1\nepochs: 3\n")
    with pytest.raises(
        ConfigError, match=r"(?s)cannot read spec .*found the key 'epochs' a second time"
    ):
        load_spec(spec)
    nested = tmp_path / "nested.yaml"
    nested.write_text("optimizer:\n  lr: 0.1\n  lr: 1.0\n")
    with pytest.raises(ConfigError, match="'lr' a second time"):
        load_spec(nested)
    assert yaml_load("a: {b: 1}\nc: 2\n") == {"a": {"b": 1}, "c": 2}  # distinct keys still read
