"""The README's benchmark figures are the bench's own output file, rendered by code."""

from __future__ import annotations

from pathlib import Path

from benchmarks import readme

ROOT = Path(__file__).parents[1]


def test_the_readmes_benchmark_block_is_rendered_from_the_result_file(monkeypatch):
    monkeypatch.chdir(ROOT)  # the block names the file as make bench does, from the checkout
    text = Path("README.md").read_text()
    start, end = text.index(readme.START), text.index(readme.END) + len(readme.END)
    assert text[start:end] == readme.block([Path("benchmarks/results/cpu.json")])
