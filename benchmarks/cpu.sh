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

parts=$(mktemp -d)
trap 'rm -rf -- "$parts"' EXIT
"$python" -m benchmarks.optimizer_step --device cpu --threads 1 --out "$parts/optimizer.json"
"$python" -m benchmarks.train_step --device cpu --threads 1 --out "$parts/train.json"
"$python" -m benchmarks.report "$parts/optimizer.json" "$parts/train.json" \
    --note "make bench (benchmarks/cpu.sh): $SECONDS s in all" --out "$out"
