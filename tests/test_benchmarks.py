"""The benchmarks' logic and plumbing, never their speed: the verdict rule on hand-made numbers,
the interleaving order, the result files and their markdown, the command lines, each piece end
to end on CPU at toy sizes, and benchmarks/gpu.sh without a GPU."""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch

from benchmarks import agreement, compare, optimizer_step, report, train_check, train_step
from benchmarks.compare import (
    BELOW_FLOOR,
    MISS,
    NOT_JUDGED,
    OK,
    WITHIN_NOISE,
    Comparison,
    Goal,
    Interval,
    Spread,
    two_pass_floor,
)
from benchmarks.memory import held_bytes, peak_bytes
from benchmarks.timing import interleaved_seconds, interleaved_suite
from lightsam.optim import OPTIMIZERS

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


@pytest.fixture
def torch_settings():
    """The pieces set torch's threads and denormal flushing for their process; run in this one,
    they must not leave them changed for the tests that follow."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


def comparison(arm, baseline, goal=None, floor=None):
    return Comparison("m", "a", "b", arm, baseline, goal, floor)


# -- the figures and the verdict rule -------------------------------------------------------------


def test_spread_is_the_median_and_the_min_max():
    assert Spread.of([3.0, 1.0, 2.0, 10.0]) == Spread(2.5, 1.0, 10.0)
    assert Spread.of([4.0]) == Spread(4.0, 4.0, 4.0)
    with pytest.raises(ValueError, match="at least one"):
        Spread.of([])


def test_ratios_are_taken_round_by_round():
    assert compare.ratios([2.0, 9.0, 3.0], [1.0, 3.0, 2.0]) == [2.0, 3.0, 1.5]
    with pytest.raises(ValueError, match="3 rounds of the arm against 2"):
        compare.ratios([1.0, 2.0, 3.0], [1.0, 2.0])


def test_median_of_ratios_is_not_the_ratio_of_medians():
    # The baseline's slow round is the arm's slow round too: per round the ratio is always 2.
    c = comparison([2.0, 20.0, 2.2], [1.0, 10.0, 1.1])
    record = c.record("cpu")
    assert (record["ratio"], record["low"], record["high"]) == pytest.approx((2.0, 2.0, 2.0))
    assert record["arm_ms"] == pytest.approx(2200.0)
    assert record["baseline_ms"] == pytest.approx(1100.0)


def test_student_t_in_closed_form_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in range(1, 30):
        for t in (0.05, 1.0, 2.5, 30.0):
            assert compare.t_within(t, dof) == pytest.approx(1 - 2 * stats.t.sf(t, dof), abs=1e-12)
        for confidence in (0.5, 0.95, 0.99):
            expected = stats.t.ppf(0.5 + confidence / 2, dof)
            assert compare.t_quantile(confidence, dof) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="dof must be"):
        compare.t_within(1.0, 0)
    with pytest.raises(ValueError, match="confidence must be"):
        compare.t_quantile(1.0, 3)


def test_the_interval_is_students_t_on_the_logarithms_of_the_ratios():
    ratios = [2.0, 2.2, 1.9, 2.1, 2.05]
    logs = [math.log(r) for r in ratios]
    half = 2.7764451051977987 * statistics.stdev(logs) / math.sqrt(5)  # t(0.975, 4)
    centre = statistics.fmean(logs)
    interval = Interval.of(ratios)
    assert (interval.low, interval.high) == pytest.approx(
        (math.exp(centre - half), math.exp(centre + half)), rel=1e-12
    )
    # Every round at 2.0: the interval is the point; one round has no standard error.
    point = Interval.of([2.0] * 4)
    assert (point.low, point.high) == pytest.approx((2.0, 2.0))
    with pytest.raises(ValueError, match="two rounds at least, got 1"):
        Interval.of([2.0])
    with pytest.raises(ValueError, match="positive values"):
        Interval.of([1.0, 0.0])


def test_one_disturbed_round_widens_the_min_max_more_than_the_interval():
    # Eleven rounds about 2.0 and one at 2.3: the min-max reaches past 2.1, the interval does
    # not (the round moves the geometric mean by 1% and widens the interval to +-2.5%).
    rounds = [2.0, 2.01, 1.99, 2.0, 2.02, 1.98, 2.0, 2.01, 1.99, 2.0, 2.02, 2.3]
    c = comparison(rounds, [1.0] * 12, Goal(2.1))
    assert Spread.of(c.ratios).high == 2.3
    assert c.interval.high < 2.1
    assert c.verdict("cpu") == OK


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (1.2, 1.4, OK),
        (1.2, 1.5, OK),  # at the goal counts as meeting "at most"
        (1.2, 1.6, WITHIN_NOISE),
        (1.4, 1.7, WITHIN_NOISE),
        (1.51, 1.7, MISS),
    ],
)
def test_an_at_most_goal_is_judged_on_the_whole_interval(low, high, verdict):
    assert Goal(1.5).verdict(Interval(low, high), "cpu") == verdict


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(2.0, 3.0, OK), (1.5, 3.0, WITHIN_NOISE), (1.2, 1.9, MISS)],
)
def test_an_at_least_goal_is_judged_on_the_whole_interval(low, high, verdict):
    assert Goal(2.0, at_most=False).verdict(Interval(low, high), "cuda") == verdict


def test_a_goal_for_another_device_is_not_judged():
    goal = Goal(2.0, at_most=False, device="cuda")
    assert goal.verdict(Interval(1.0, 1.0), "cpu") == NOT_JUDGED
    assert goal.verdict(Interval(1.0, 1.0), "cuda") == MISS
    assert str(goal) == ">= 2x on cuda"
    assert str(Goal(2.2)) == "<= 2.2x"


def test_the_verdict_of_a_comparison_comes_from_its_rounds():
    assert comparison([1.0, 1.2, 1.1, 1.1], [1.0] * 4, Goal(1.5)).verdict("cpu") == OK
    assert comparison([1.0, 2.0, 1.5, 1.2], [1.0] * 4, Goal(1.5)).verdict("cpu") == WITHIN_NOISE
    assert comparison([1.6, 1.7, 1.65, 1.6], [1.0] * 4, Goal(1.5)).verdict("cpu") == MISS
    assert comparison([1.0, 2.0], [1.0, 1.0]).verdict("cpu") == NOT_JUDGED


def test_an_interval_below_the_floor_is_a_measurement_problem_and_gets_no_verdict():
    # Ratios 1.90 to 1.94: the interval would say "ok" against 2.1, but the step cannot cost
    # less than its two passes.
    c = comparison([1.9, 1.92, 1.94, 1.91], [1.0] * 4, Goal(2.1), floor=2.0)
    assert c.interval.high < 2.0
    assert c.below_floor == 4
    assert c.verdict("cpu") == BELOW_FLOOR
    record = c.record("cpu")
    assert record["verdict"] == BELOW_FLOOR
    assert record["rounds_below_floor"] == 4
    assert record["floor"] == 2.0
    assert (record["interval_low"], record["interval_high"]) == pytest.approx(
        (c.interval.low, c.interval.high)
    )
    assert report.verdict_text(record) == (
        "**measurement problem**: the 95% interval below the 2.00x floor (4 of 4 rounds)"
    )
    # 1.92 is possible where the base's update is a twelfth of the base's step.
    lower = comparison([1.9, 1.92, 1.94, 1.91], [1.0] * 4, Goal(2.1), floor=1.92)
    assert lower.verdict("cpu") == OK
    # Without a floor nothing is below it.
    assert comparison([0.5, 0.6, 0.55], [1.0] * 3, Goal(2.1)).verdict("cpu") == OK


def test_single_rounds_below_the_floor_are_shown_as_noise_and_decide_nothing():
    # A step at its floor, measured with a round's noise: its median is below the floor, the
    # interval reaches over it, so the step is judged against its goal.
    c = comparison([2.02, 1.97, 1.99, 1.98, 2.03], [1.0] * 5, Goal(2.1), floor=2.0)
    assert Spread.of(c.ratios).median < 2.0 < c.interval.high
    assert (c.below_floor, c.verdict("cpu")) == (3, OK)
    assert (
        report.verdict_text(c.record("cpu")) == "ok (3 of 5 rounds below the 2.00x floor, as noise)"
    )
    across = comparison([1.8, 2.2, 2.3, 2.0], [1.0] * 4, Goal(2.1), floor=2.0)
    assert across.verdict("cpu") == WITHIN_NOISE


def test_the_two_pass_floor_is_the_two_passes_against_the_base_and_never_above_two():
    # Two passes timed alone at 1.8 base steps (the median round) ...
    assert two_pass_floor([1.6, 1.8, 1.9], [1.0, 1.0, 1.0]) == pytest.approx(1.8)
    # ... and passes timed slower than twice the step are noise, not a higher floor.
    assert two_pass_floor([2.0, 2.2, 2.4], [1.0, 1.0, 1.0]) == 2.0


# -- the interleaved loop -------------------------------------------------------------------------


def test_a_round_alternates_the_arms_call_by_call_from_a_rotated_start():
    log = []
    arms = {name: (lambda name=name: log.append(name)) for name in "ABC"}
    times = interleaved_seconds(arms, CPU, rounds=4, calls=2, warmup=1)
    assert {name: len(values) for name, values in times.items()} == {"A": 4, "B": 4, "C": 4}
    assert all(t >= 0.0 for values in times.values() for t in values)
    warmup, rounds = "".join(log[:3]), "".join(log[3:])
    assert warmup == "ABC"
    assert [rounds[i : i + 6] for i in range(0, len(rounds), 6)] == [
        "ABCABC",
        "BCABCA",
        "CABCAB",
        "ABCABC",
    ]


def test_two_arms_alternate():
    log = []
    arms = {name: (lambda name=name: log.append(name)) for name in "AB"}
    interleaved_seconds(arms, CPU, rounds=3, calls=2, warmup=0)
    assert "".join(log) == "ABAB" + "BABA" + "ABAB"


def test_a_round_is_the_mean_of_its_calls(monkeypatch):
    # A clock whose readings make the calls last 3, 1, 2 s, then 5, 4, 6 s.
    readings = iter([0, 3, 10, 11, 20, 22, 30, 35, 40, 44, 50, 56])
    monkeypatch.setattr("benchmarks.timing.time.perf_counter", lambda: float(next(readings)))
    times = interleaved_seconds({"A": lambda: None}, CPU, rounds=2, calls=3, warmup=0)
    assert times == {"A": [2.0, 5.0]}


def test_arms_given_as_a_builder_are_built_and_warmed_up_afresh_every_round():
    log = []

    def build():
        log.append("build")
        return {name: (lambda name=name: log.append(name)) for name in "AB"}

    times = interleaved_seconds(build, CPU, rounds=2, calls=1, warmup=1)
    assert {name: len(values) for name, values in times.items()} == {"A": 2, "B": 2}
    assert log == ["build", "A", "B", "A", "B", "build", "A", "B", "B", "A"]


def test_the_comparisons_of_a_suite_take_their_rounds_in_turn():
    log = []

    def arms(key):
        return {f"{key}{arm}": (lambda arm=arm: log.append(f"{key}{arm}")) for arm in "ab"}

    times = interleaved_suite({"X": arms("X"), "Y": arms("Y")}, CPU, rounds=3, calls=1, warmup=1)
    assert {key: {arm: len(v) for arm, v in t.items()} for key, t in times.items()} == {
        "X": {"Xa": 3, "Xb": 3},
        "Y": {"Ya": 3, "Yb": 3},
    }
    # Warm-up of both, then round r of X and of Y before round r + 1 of either.
    assert " ".join(log) == " ".join(["Xa Xb Ya Yb", "Xa Xb Ya Yb", "Xb Xa Yb Ya", "Xa Xb Ya Yb"])


def test_a_suite_builds_one_comparison_at_a_time_and_drops_it_after_its_round():
    alive = weakref.WeakSet()
    seen = []

    class Arm:
        def __call__(self):
            seen.append(len(alive))

    def build(key):
        def arms():
            arm = Arm()
            alive.add(arm)
            return {key: arm}

        return arms

    interleaved_suite({"X": build("X"), "Y": build("Y")}, CPU, rounds=2, calls=2, warmup=1)
    assert seen and max(seen) == 1  # the previous comparison's arms were gone
    assert len(seen) == 2 * 2 * (2 + 1)


def test_no_garbage_collection_lands_inside_a_round():
    seen = []
    arms = {"A": lambda: seen.append(gc.isenabled())}
    interleaved_seconds(arms, CPU, rounds=2, calls=2, warmup=1)
    assert seen == [True, False, False, False, False]  # the warm-up is outside the rounds
    assert gc.isenabled()
    gc.disable()  # a caller's choice is kept
    try:
        interleaved_seconds({"A": lambda: None}, CPU, rounds=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_an_arm_raises():
    def broken():
        raise RuntimeError("arm failed")

    with pytest.raises(RuntimeError, match="arm failed"):
        interleaved_seconds({"A": broken}, CPU, rounds=1, warmup=0)
    assert gc.isenabled()


def test_the_loop_refuses_empty_sizes():
    with pytest.raises(ValueError, match="rounds, calls >= 1"):
        interleaved_seconds({"A": lambda: None}, CPU, rounds=0)


# -- what is compared -----------------------------------------------------------------------------


def test_every_registered_optimizer_is_benchmarked():
    assert set(optimizer_step.HPARAMS) == set(OPTIMIZERS)
    sharpness_aware = {name for name, entry in OPTIMIZERS.items() if entry.sharpness_aware}
    assert set(train_step.HPARAMS) == sharpness_aware


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("sgd_sam", "sgd"),
        ("asam", "sgd"),
        ("lightsam_i", "adagrad_norm"),
        ("lightsam_ii", "adagrad"),
        ("lightsam_iii", "adam"),
        ("adasam", "adam(amsgrad=True)"),
        ("adam_sam", "adam"),
        ("adamw_sam", "adamw"),
        ("adagrad_sam", "adagrad"),
        ("adagrad_norm_sam", "adagrad_norm"),
        ("lightsam_i_sgd", "sgd"),
        ("sgd_sam_decay", "sgd"),
    ],
)
def test_each_method_is_timed_against_the_optimizer_of_its_descent(name, base):
    label, registry_name, hparams = train_step.base_arm(name)
    assert label == base
    assert "rho" not in hparams
    assert set(hparams) <= OPTIMIZERS[registry_name].hyperparameters
    assert hparams["lr"] == train_step.HPARAMS[name]["lr"]


def test_held_memory_of_sam_is_its_base_and_one_copy_of_the_weights():
    case = train_step.Case("lenet5", 4, CPU)
    weights = sum(p.numel() * p.element_size() for p in case.model.parameters())
    held = {}
    for name, hparams in (
        ("sgd_sam", train_step.HPARAMS["sgd_sam"]),
        train_step.base_arm("sgd_sam")[1:],
    ):
        step = case.step(name, hparams)
        step(case.x, case.y)
        held[name] = held_bytes(step)
    # SGD: weights, gradients, momentum; SGD-SAM: the same and the weights before the ascent.
    assert held["sgd"] == 3 * weights
    assert held["sgd_sam"] - held["sgd"] == weights


def test_peak_memory_is_refused_on_cpu():
    with pytest.raises(ValueError, match="CUDA only"):
        peak_bytes(lambda: lambda: None, CPU)


# -- the result files -----------------------------------------------------------------------------


def ratio_table(verdicts_below_floor=0):
    goal = Goal(1.5)
    records = [
        comparison([1.24, 1.25, 1.26, 1.25], [1.0] * 4, goal).record("cpu")
        | {"model": model, "arm": arm, "baseline": "Adam|foreach"}
        for model in ("resnet18", "many_small")
        for arm in ("sgd_sam", "lightsam_i")
    ]
    records.append(
        comparison([1.9, 1.92, 1.94, 1.91], [1.0] * 4, Goal(2.1), floor=2.0).record("cpu")
        | {"model": "lenet5", "arm": "sgd_sam", "baseline": "sgd"}
    )
    return report.table("t/ratio", "Optimizer step", "ratio", records, settings={"rounds": 4})


def checks_table():
    records = [
        {"name": "loss falls", "value": "2.3 -> 0.1", "expected": "<= 0.5x", "passed": True},
        {"name": "finite", "value": "9 of 10", "expected": "all", "passed": False},
    ]
    return report.table("t/check", "Checks", "check", records, notes=["A note."])


def memory_table():
    record = {"model": "lenet5", "arm": "sgd_sam", "baseline": "sgd"}
    record |= {"arm_bytes": 3 * 2**20, "baseline_bytes": 2 * 2**20}
    return report.table("t/memory", "Memory", "memory", [record])


def test_a_table_kind_is_checked():
    with pytest.raises(ValueError, match="table kind must be one of ratio, memory, check"):
        report.table("t", "T", "speed", [])


def test_a_ratio_table_renders_every_figure(tmp_path):
    text = report.render_table(ratio_table())
    assert text.startswith("### Optimizer step\n\nrounds 4\n")
    header = "| model | arm | baseline | arm ms | baseline ms | ratio (min–max; 95% interval) |"
    assert f"{header} floor |" in text
    ratio = "1.25x (1.24–1.26; 95% 1.24–1.26)"
    assert f"| resnet18 | sgd_sam | Adam\\|foreach | 1250 | 1000 | {ratio} |  |" in text
    assert "| <= 1.5x | ok |" in text
    assert (
        "| 2.00x | <= 2.1x | **measurement problem**: the 95% interval below the 2.00x floor "
        "(4 of 4 rounds) |" in text
    )


def test_checks_and_memory_render(tmp_path):
    checks = report.render_table(checks_table())
    assert "A note." in checks
    assert "| loss falls | 2.3 -> 0.1 | <= 0.5x | ok |" in checks
    assert "| finite | 9 of 10 | all | **FAILED** |" in checks
    memory = report.render_table(memory_table())
    assert "| lenet5 | sgd_sam | sgd | 3.0 | 2.0 | 1.50x |" in memory


def test_a_document_is_written_as_json_with_its_markdown_and_read_back(tmp_path):
    doc = report.document(CPU, [ratio_table(), checks_table()], "python -m benchmarks.x --y")
    path = tmp_path / "deep" / "cpu.json"
    report.write(path, doc)
    assert report.load(path) == doc
    assert json.loads(path.read_text())["machine"]["device"] == "cpu"
    markdown = path.with_suffix(".md").read_text()
    assert markdown.startswith("# Benchmark results\n")
    assert "### Optimizer step" in markdown and "### Checks" in markdown
    (tmp_path / "other.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="not a benchmark result of schema 2"):
        report.load(tmp_path / "other.json")
    # Strict JSON only: a non-finite number is refused before anything is written.
    broken = tmp_path / "broken.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        report.write(broken, {**doc, "notes": [math.inf]})
    assert not broken.exists()


def test_two_runs_agree_when_every_judged_verdict_is_the_same(tmp_path, capsys):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    report.write(first, report.document(CPU, [ratio_table(), memory_table()], "one"))
    report.write(second, report.document(CPU, [ratio_table(), memory_table()], "two"))
    agreement.main([str(first), str(second)])
    assert capsys.readouterr().out == "5 of 5 verdicts agree; 0 contradict (ok against miss)\n"

    changed = ratio_table()
    wider = comparison([1.2, 1.4, 1.6, 1.4], [1.0] * 4, Goal(1.5)).record("cpu")
    slower = comparison([1.6, 1.65, 1.7, 1.6], [1.0] * 4, Goal(1.5)).record("cpu")
    for record, new in ((changed["records"][1], wider), (changed["records"][3], slower)):
        record |= {k: v for k, v in new.items() if k not in ("model", "arm", "baseline")}
    changed["records"] = changed["records"][:4]  # lenet5's comparison judged in one file only
    report.write(second, report.document(CPU, [changed], "two"))
    elsewhere = report.document(CPU, [changed], "two")
    report.write(second, elsewhere | {"machine": {**elsewhere["machine"], "cpu": "another"}})
    with pytest.raises(SystemExit) as stop:
        agreement.main([str(first), str(second)])
    assert stop.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "note: the two files were measured on different machines or software",
        "t/ratio: lenet5 sgd_sam / sgd: judged in the first file only",
        "t/ratio: many_small lightsam_i / Adam|foreach: ok at 1.25x (1.24–1.26; 95% 1.24–1.26) "
        "against miss at 1.62x (1.60–1.70; 95% 1.56–1.71) (goal <= 1.5x)",
        "t/ratio: resnet18 lightsam_i / Adam|foreach: ok at 1.25x (1.24–1.26; 95% 1.24–1.26) "
        "against within noise at 1.40x (1.20–1.60; 95% 1.16–1.68) (goal <= 1.5x)",
        "2 of 4 verdicts agree; 1 contradict (ok against miss)",
    ]


def test_the_agreement_of_a_file_that_is_no_result_is_one_line(tmp_path):
    stray = tmp_path / "stray.json"
    stray.write_text("{}")
    with pytest.raises(SystemExit, match=r"benchmarks.agreement: .*stray.json: not a benchmark"):
        agreement.main([str(stray), str(stray)])


def test_documents_combine_in_order_with_failures_and_notes():
    first = report.document(CPU, [ratio_table()], "one")
    second = report.document(CPU, [checks_table(), memory_table()], "two")
    doc = report.combine([first, second], failures=["ddp: exit status 1"], notes=["42 s"])
    assert [t["id"] for t in doc["tables"]] == ["t/ratio", "t/check", "t/memory"]
    assert doc["commands"] == ["one", "two"]
    assert doc["failures"] == ["ddp: exit status 1"]
    markdown = report.render_markdown(doc)
    assert "**Failed: ddp: exit status 1**" in markdown and "42 s" in markdown
    with pytest.raises(ValueError, match="nothing to combine"):
        report.combine([])


def test_the_readme_block_is_rendered_from_the_result_files(tmp_path):
    path = tmp_path / "cpu.json"
    report.write(path, report.document(CPU, [ratio_table(), memory_table(), checks_table()], "c"))
    block = report.readme_block([path])
    assert block.startswith(f"From `{path.as_posix()}`: ")
    # One row per arm, one column per model; a model without that arm has an empty cell.
    assert "| arm | baseline | goal | resnet18 | many_small | lenet5 |" in block
    ok = "1.25x (1.24–1.26; 95% 1.24–1.26) ok"
    assert f"| sgd_sam | Adam\\|foreach | <= 1.5x | {ok} | {ok} |  |" in block
    assert f"| lightsam_i | Adam\\|foreach | <= 1.5x | {ok} |" in block
    assert "1.92x (1.90–1.94; 95% 1.89–1.94) **measurement problem**" in block
    assert "| sgd_sam | sgd | 1.50x (3.0 / 2.0 MiB) |" in block
    assert "| finite | 9 of 10 | all | **FAILED** |" in block
    assert report.readme_block([path, path]).count("From `") == 2


def test_the_report_command_combines_parts(tmp_path, capsys):
    parts = []
    for i, t in enumerate((ratio_table(), checks_table())):
        parts.append(tmp_path / f"part{i}.json")
        report.write(parts[-1], report.document(CPU, [t], f"part {i}"))
    out = tmp_path / "all.json"
    report.main([*map(str, parts), "--failure", "x: out of time", "--out", str(out)])
    doc = report.load(out)
    assert [t["id"] for t in doc["tables"]] == ["t/ratio", "t/check"]
    assert doc["failures"] == ["x: out of time"]
    assert out.with_suffix(".md").exists()
    assert str(out) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "missing.json"), "--out", str(out)])
    assert "no such result file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main([str(parts[0]), "--out", str(tmp_path / "all.txt")])
    assert "--out must end in .json" in capsys.readouterr().err


# -- the command lines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "argv", "message"),
    [
        (optimizer_step.parse_args, ["--rounds", "1"], "a spread needs two rounds at least"),
        (optimizer_step.parse_args, ["--calls", "0"], "must be >= 1, got 0"),
        (optimizer_step.parse_args, ["--warmup", "x"], "not an integer: 'x'"),
        (optimizer_step.parse_args, ["--device", "tpu"], "not a device"),
        (optimizer_step.parse_args, ["--device", "meta"], "device must be cpu or cuda"),
        (optimizer_step.parse_args, ["--models", "vgg"], "unknown: vgg; valid: resnet18"),
        (optimizer_step.parse_args, ["--methods", ","], "unknown: nothing given"),
        (optimizer_step.parse_args, ["--precision", "fp8"], "invalid choice: 'fp8'"),
        (optimizer_step.parse_args, ["--crossover", "a,b"], "not comma-separated integers"),
        (
            optimizer_step.parse_args,
            ["--crossover", "14,22"],
            "each k must be in 0..21, got '14,22'",
        ),
        (train_step.parse_args, ["--batch", "lenet5"], "expected NAME=N"),
        (train_step.parse_args, ["--batch", "vgg=4"], "expected NAME=N with NAME one of"),
        (train_step.parse_args, ["--batch", "lenet5=0"], "must be >= 1"),
        (train_step.parse_args, ["--methods", "sgd"], "unknown: sgd"),
        (train_check.parse_args, ["--steps", "5"], "--steps must be >= 10"),
        (train_check.parse_args, ["--fall", "1.5"], "--fall must be in (0, 1)"),
        (train_check.parse_args, ["--noise", "-1"], "--noise must be >= 0"),
        (train_check.parse_args, ["--lr", "0"], "--lr must be > 0"),
    ],
)
def test_command_lines_are_checked(parse, argv, message, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_is_refused_without_a_gpu(capsys):
    with pytest.raises(SystemExit):
        optimizer_step.parse_args(["--device", "cuda"])
    assert "torch sees no CUDA device" in capsys.readouterr().err


# -- the pieces, end to end on CPU at toy sizes ---------------------------------------------------

TOY = ["--device", "cpu", "--rounds", "2", "--calls", "1", "--warmup", "1"]


def test_the_optimizer_benchmark_runs_end_to_end(tmp_path, torch_settings):
    out = tmp_path / "optimizer.json"
    argv = [*TOY, "--models", "many_small", "--methods", "sgd_sam,adam", "--out", str(out)]
    optimizer_step.main(argv)
    doc = report.load(out)
    assert doc["commands"] == ["python -m benchmarks.optimizer_step " + " ".join(argv)]
    vs_adam, foreach = doc["tables"]
    assert vs_adam["id"] == "optimizer_step/fp32/vs_adam" and vs_adam["kind"] == "ratio"
    assert [(r["arm"], r["baseline"]) for r in vs_adam["records"]] == [
        ("sgd_sam", "Adam(foreach)"),
        ("adam", "Adam(foreach)"),
    ]
    assert [r["goal"] for r in vs_adam["records"]] == ["<= 1.5x", None]
    assert {r["verdict"] for r in vs_adam["records"]} <= {OK, MISS, WITHIN_NOISE, NOT_JUDGED}
    # The foreach goal is a CUDA goal: recorded on CPU, not judged.
    assert [r["verdict"] for r in foreach["records"]] == [NOT_JUDGED, NOT_JUDGED]
    assert foreach["records"][0]["goal"] == ">= 2x on cuda"
    assert all(len(r["ratios"]) == 2 for t in doc["tables"] for r in t["records"])


def test_the_crossover_table_times_both_paths_by_tensor_size(tmp_path, torch_settings):
    out = tmp_path / "optimizer.json"
    argv = [*TOY, "--models", "many_small", "--methods", "sgd", "--crossover", "19,21"]
    optimizer_step.main([*argv, "--out", str(out)])
    *_, crossover = report.load(out)["tables"]
    assert crossover["id"] == "optimizer_step/fp32/crossover"
    # 2^21 elements in all: 4 tensors of 2^19, 1 of 2^21; each method's per-tensor path against
    # its foreach path, no goal (the table is the measurement the default is chosen by).
    assert [(r["model"], r["arm"], r["baseline"]) for r in crossover["records"]] == [
        ("2^19 x 4", "lightsam_iii per-tensor", "lightsam_iii foreach"),
        ("2^19 x 4", "sgd_sam per-tensor", "sgd_sam foreach"),
        ("2^21 x 1", "lightsam_iii per-tensor", "lightsam_iii foreach"),
        ("2^21 x 1", "sgd_sam per-tensor", "sgd_sam foreach"),
    ]
    assert all(r["goal"] is None and len(r["ratios"]) == 2 for r in crossover["records"])
    assert "no tensor has more than 2^14 elements" in crossover["notes"][0]


def test_the_training_benchmark_runs_end_to_end(tmp_path, torch_settings):
    out = tmp_path / "train.json"
    argv = [*TOY, "--models", "lenet5", "--methods", "sgd_sam,lightsam_ii"]
    train_step.main([*argv, "--batch", "lenet5=4", "--precision", "bf16", "--out", str(out)])
    times, held = report.load(out)["tables"]  # no peak memory on CPU
    assert times["id"] == "train_step/bf16/time"
    assert times["settings"]["batch"] == "lenet5 4"
    assert times["settings"]["precision"] == "bf16 autocast"
    assert [(r["arm"], r["baseline"]) for r in times["records"]] == [
        ("sgd_sam", "sgd"),
        ("lightsam_ii", "adagrad"),
    ]
    for r in times["records"]:
        assert 1.0 < r["floor"] <= 2.0
        assert r["goal"] == "<= 2.1x"
        assert r["verdict"] in {OK, MISS, WITHIN_NOISE, BELOW_FLOOR}
        assert r["verdict"] != BELOW_FLOOR or r["rounds_below_floor"] > 0
    assert held["kind"] == "memory"
    assert all(r["arm_bytes"] > r["baseline_bytes"] for r in held["records"])


def test_the_training_check_runs_and_its_loss_falls(tmp_path, torch_settings):
    out = tmp_path / "check.json"
    argv = ["--device", "cpu", "--model", "lenet5", "--steps", "150", "--batch", "32"]
    train_check.main([*argv, "--samples", "512", "--lr", "0.02", "--out", str(out)])
    (table,) = report.load(out)["tables"]
    assert table["kind"] == "check"
    assert [r["passed"] for r in table["records"]] == [True, True]


def test_a_failed_check_exits_non_zero(tmp_path, torch_settings):
    # One step in ten cannot bring the loss to a hundredth of its start.
    argv = ["--device", "cpu", "--model", "lenet5", "--steps", "10", "--batch", "8"]
    with pytest.raises(SystemExit) as exited:
        train_check.main([*argv, "--fall", "0.01", "--out", str(tmp_path / "c.json")])
    assert exited.value.code == 1
    (table,) = report.load(tmp_path / "c.json")["tables"]
    assert not table["records"][1]["passed"]


# -- the scripts ----------------------------------------------------------------------------------


def script(name, *args, env=None, timeout=60):
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
    )


@pytest.mark.parametrize("name", ["cpu.sh", "gpu.sh"])
@pytest.mark.parametrize("args", [("a.json", "b.json"), ("--fast",), ("out.txt",)])
def test_the_scripts_refuse_bad_arguments(name, args):
    done = script(name, *args)
    assert done.returncode == 2
    assert "usage:" in done.stderr or "must end in .json" in done.stderr


def test_the_smoke_run_names_its_output():
    # Else it would overwrite the GPU's results at the default path with toy figures.
    done = script("gpu.sh", "--cpu-smoke")
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_the_gpu_check_refuses_clearly_without_a_gpu(tmp_path):
    done = script("gpu.sh", str(tmp_path / "gpu.json"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 3
    assert "sees no CUDA GPU" in done.stderr
    assert not (tmp_path / "gpu.json").exists()


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for Python in gpu.sh: each piece writes a one-check result file, ddp fails.
if [[ $2 == benchmarks.report ]]; then exec {python} "$@"; fi
if [[ $2 == benchmarks.ddp_smoke ]]; then exit 1; fi
while [[ $1 != --out ]]; do shift; done
cat > "$2" <<JSON
{{"schema": 2, "created": "2026-01-01T00:00:00+00:00", "commands": ["fake"], "notes": [],
 "failures": [], "machine": {{"device": "cpu", "name": "fake", "threads": 1, "torch": "0",
 "python": "3", "platform": "fake"}}, "tables": [{{"id": "$(basename "$2")", "title": "T",
 "kind": "check", "notes": [], "settings": {{}}, "records": []}}]}}
JSON
"""


def test_the_gpu_check_records_a_failed_piece_and_keeps_the_others(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    out = tmp_path / "out" / "gpu.json"
    done = script("gpu.sh", "--cpu-smoke", str(out), env={"PYTHON": str(fake)})
    assert done.returncode == 1, done.stderr
    doc = report.load(out)
    assert doc["failures"] == ["ddp: exit status 1"]
    assert [t["id"] for t in doc["tables"]] == [
        "optimizer-fp32.json",
        "optimizer-bf16.json",
        "train-fp32.json",
        "train-bf16.json",
        "compiled-bf16.json",
        "train-check.json",
    ]
    assert "**Failed: ddp: exit status 1**" in out.with_suffix(".md").read_text()


def test_the_gpu_check_runs_every_piece_on_cpu_at_toy_sizes(tmp_path):
    out = tmp_path / "gpu.json"
    done = script("gpu.sh", "--cpu-smoke", str(out), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = report.load(out)
    assert doc["failures"] == []
    assert [t["id"] for t in doc["tables"]] == [
        "optimizer_step/fp32/vs_adam",
        "optimizer_step/fp32/foreach",
        "optimizer_step/bf16/vs_adam",
        "optimizer_step/bf16/foreach",
        "train_step/fp32/channels_last/time",
        "train_step/fp32/channels_last/held_memory",
        "train_step/bf16/channels_last/time",
        "train_step/bf16/channels_last/held_memory",
        "compiled_step/bf16/time",
        "compiled_step/bf16/checks",
        "train_check/lenet5/sgd_sam/bf16",
        "ddp_smoke/gloo",
    ]
    checks = [r for t in doc["tables"] if t["kind"] == "check" for r in t["records"]]
    assert checks and all(r["passed"] for r in checks)
    assert "--cpu-smoke" in doc["notes"][0]
    assert "### One-process DDP (gloo)" in out.with_suffix(".md").read_text()
    assert "| sgd_sam compiled | sgd compiled |" in report.readme_block([out])
