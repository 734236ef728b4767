#!/usr/bin/env bash
# make bench: the optimizer-step and training-step benchmarks on this machine's CPU, into one
# result file, by default benchmarks/results/cpu.json, with cpu.md rendered beside it.
#
#   benchmarks/cpu.sh [OUTPUT.json]
#
# One torch thread: on a small shared machine two threads wait on each other whenever another
# process takes a core, which multiplies the noise of every round; one thread measures the same
# ratios with far less of it. PYTHON picks the interpreter (default: the checkout's .venv, else
# python3).
set -euo pipefail

if (($# > 1)) || [[ ${1:-} == -* ]]; then
    echo "usage: $0 [OUTPUT.json]" >&2
    exit 2
fi
out=${1:-benchmarks/results/cpu.json}
if [[ $out != *.json ]]; then
    echo "cpu.sh: the output file must end in .json, got $out" >&2
    exit 2
fi
out=$(realpath -m -- "$out")
cd "$(dirname -- "$0")/.."
python=${PYTHON:-python3}
if [[ -z ${PYTHON:-} && -x .venv/bin/python ]]; then
    python=.venv/bin/python
fi

# glibc hands freed blocks above its mmap threshold back to the system and maps fresh, faulting
# pages on the next allocation; its thresholds rise as blocks are freed, so whether a step pays
# those faults depends on what ran before it (the arm beside it, the previous round's optimizers):
# the same torch.optim.Adam step on ResNet-18 measured from 47 to 63 ms as the baseline of the
# comparisons of one run. Fixed thresholds keep every freed block in the heap (the largest
# parameter, 9.4 MB, is under the 32 MB threshold), the steady state a long training run
# reaches, the same for every arm: 39 to 42 ms in the next run.
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=0

parts=$(mktemp -d)
trap 'rm -rf -- "$parts"' EXIT
"$python" -m benchmarks.optimizer_step --device cpu --threads 1 --crossover 10,12,14,16,18 \
    --out "$parts/optimizer.json"
"$python" -m benchmarks.train_step --device cpu --threads 1 --out "$parts/train.json"
"$python" -m benchmarks.report "$parts/optimizer.json" "$parts/train.json" \
    --note "make bench (benchmarks/cpu.sh): $SECONDS s in all" --out "$out"
