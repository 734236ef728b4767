#!/usr/bin/env bash
# The GPU check: every benchmark and smoke run that needs a CUDA GPU, in under 8 minutes on one
# GPU (each piece has a time limit, together 460 s), all figures in one result file.
#
#   benchmarks/gpu.sh [OUTPUT.json]    default $OUT/gpu.json if OUT is set, else
#                                      benchmarks/results/gpu.json; OUTPUT.md is written beside
#   benchmarks/gpu.sh --cpu-smoke OUTPUT.json
#                                      the same pieces on the CPU at toy sizes, so that the
#                                      tests can check this script without a GPU
#
# The pieces: the optimizer-step and training-step benchmarks in fp32 and bf16 (channels_last
# for the training step), a torch.compile'd training step, a short ResNet-18 SAM training on
# synthetic CIFAR-shaped data whose loss must fall, a one-process NCCL DDP run. A piece that
# fails or runs out of time is recorded in the result file as a failure and the others still
# run; the exit status is then 1. PYTHON picks the interpreter (default: the checkout's .venv,
# else python3).
set -uo pipefail

usage="usage: $0 [OUTPUT.json] | $0 --cpu-smoke OUTPUT.json"
smoke=false
if [[ ${1:-} == --cpu-smoke ]]; then
    smoke=true
    shift
    if (($# != 1)); then
        echo "$usage" >&2
        exit 2
    fi
fi
if (($# > 1)) || [[ ${1:-} == -* ]]; then
    echo "$usage" >&2
    exit 2
fi
out=${1:-${OUT:+$OUT/gpu.json}}
out=${out:-benchmarks/results/gpu.json}
if [[ $out != *.json ]]; then
    echo "gpu.sh: the output file must end in .json, got $out" >&2
    exit 2
fi
out=$(realpath -m -- "$out")
cd "$(dirname -- "$0")/.." || exit 2
python=${PYTHON:-python3}
if [[ -z ${PYTHON:-} && -x .venv/bin/python ]]; then
    python=.venv/bin/python
fi

# Toy sizes for --cpu-smoke; on CUDA each piece runs at its module's defaults (SIZES), chosen
# for the time limits below.
optimizer=() train=() compiled=() check=() ddp=()
if $smoke; then
    # One thread each: the pieces are timed, and two threads on a small CPU only add noise.
    device=(--device cpu --threads 1)
    optimizer=(--models many_small --methods sgd_sam,lightsam_iii --rounds 2 --calls 1 --warmup 1)
    train=(--models lenet5 --methods sgd_sam,adasam --batch lenet5=8 --rounds 2 --warmup 1)
    compiled=(--model lenet5 --batch 8 --rounds 2 --warmup 1 --backend eager)
    # LeNet-5 at the benchmarks' lr 0.05 sits on the edge of stability: some seeds' last steps
    # spike. At 0.02 the loss falls below a tenth of its start in 150 steps, fp32 or bf16.
    check=(--model lenet5 --steps 150 --batch 32 --samples 512 --lr 0.02)
    ddp=(--model lenet5 --steps 2 --batch 8)
else
    device=(--device cuda)
    if ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "gpu.sh: torch ($python) sees no CUDA GPU on this machine, and this check needs" \
            "one. On a CPU, make bench runs the CPU benchmarks." >&2
        exit 3
    fi
fi

parts=$(mktemp -d) || exit 2
trap 'rm -rf -- "$parts"' EXIT
results=()
failures=()

# piece NAME SECONDS MODULE ARGS...: one Python process, at most SECONDS long.
piece() {
    local name=$1 limit=$2 module=$3 status
    shift 3
    echo "== $name: python -m $module $* (at most ${limit} s)"
    timeout --kill-after=10 "$limit" \
        "$python" -m "$module" "${device[@]}" --out "$parts/$name.json" "$@"
    status=$?
    if ((status == 124 || status == 137)); then
        failures+=(--failure "$name: out of time after $limit s")
    elif ((status != 0)); then
        failures+=(--failure "$name: exit status $status")
    fi
    # A piece whose checks failed still wrote its figures.
    if [[ -f $parts/$name.json ]]; then
        results+=("$parts/$name.json")
    fi
}

# The limits add up to 460 s: with the start and the report, under 8 minutes in all.
piece optimizer-fp32 65 benchmarks.optimizer_step --precision fp32 "${optimizer[@]}"
piece optimizer-bf16 65 benchmarks.optimizer_step --precision bf16 "${optimizer[@]}"
piece train-fp32 55 benchmarks.train_step --precision fp32 --channels-last "${train[@]}"
piece train-bf16 55 benchmarks.train_step --precision bf16 --channels-last "${train[@]}"
# Most of it is compiling two graphs of ResNet-18, forward and backward.
piece compiled-bf16 150 benchmarks.compiled_step --precision bf16 --channels-last "${compiled[@]}"
piece train-check 35 benchmarks.train_check --precision bf16 --channels-last "${check[@]}"
piece ddp 35 benchmarks.ddp_smoke "${ddp[@]}"

if ((${#results[@]} == 0)); then
    echo "gpu.sh: no piece produced results" >&2
    exit 1
fi
"$python" -m benchmarks.report "${results[@]}" "${failures[@]}" \
    --note "benchmarks/gpu.sh$($smoke && echo ' --cpu-smoke'): $SECONDS s in all" --out "$out" ||
    exit 1
((${#failures[@]} == 0))
