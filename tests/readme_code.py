"""The Python code blocks of a README section, for the tests that run the README as written."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks between ``heading`` (a whole line of README.md) and the next
    heading of any level (a ``#`` line outside a code block)."""
    lines = README.read_text().splitlines()
    blocks: list[str] = []
    block: list[str] | None = None
    fenced = False
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
            if fenced and line == "```python":
                block = []
            elif not fenced and block is not None:
                blocks.append("\n".join(block) + "\n")
                block = None
        elif fenced:
            if block is not None:
                block.append(line)
        elif line.startswith("#"):
            break
    if not blocks:
        raise AssertionError(f"README.md: no python block under {heading!r}")
    return blocks
