"""Seeded synthetic notebooks for the benchmarks (written as plain nbformat 4.5 JSON)."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

PNG = base64.b64encode(bytes(random.Random(0).getrandbits(8) for _ in range(50_000))).decode()


def notebook(n_cells: int, seed: int, images: int = 0, change: set[int] | None = None) -> dict:
    rng = random.Random(seed)
    cells = [{"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]},
              "source": "seed = 0\nalpha = 0.5\n", "outputs": [], "execution_count": None}]
    for i in range(1, n_cells):
        if i % 5 == 0:
            cells.append({"cell_type": "markdown", "id": f"m{i}", "metadata": {},
                          "source": f"## Step {i}\nSome prose about step {i}."})
            continue
        src = f"x{i} = {rng.randint(0, 999)} * alpha\ny{i} = [x{i} + k for k in range(3)]\nprint(y{i})\n"
        if change and i in change:
            src = src.replace("range(3)", "range(4)") + f"z{i} = sum(y{i})\n"
        outputs = [{"output_type": "stream", "name": "stdout", "text": f"[{i}, {i + 1}]\n"}]
        if images and i % max(1, n_cells // images) == 1:
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": PNG, "text/plain": "<Figure>"}})
        cells.append({"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src,
                      "outputs": outputs, "execution_count": i})
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def write(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))
    return path
