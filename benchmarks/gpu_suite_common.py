"""Shared pieces of the GPU suite: the incremental report, generated data sets, config building.

The report is written after every row (Markdown and CSV), so a run cut short by its time limit
still leaves what it did.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from typing import Dict, Iterable, List, Optional

import numpy as np

#: the tests' folder: generated data (``synthetic``) and the mLSTM reference come from there
TESTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
sys.path.insert(0, TESTS_DIR)

from synthetic import rule_sequences, write_inter  # noqa: E402,F401  (the tests' generators)


class Report:
    """``report.md`` (sections of Markdown tables) and ``report.csv`` (one row per result) in ``out_dir``.

    Args:
        out_dir: folder for the two files (created).
        title: first line of the Markdown report.
    """

    CSV_COLUMNS = ["part", "name", "status", "seconds", "values"]

    def __init__(self, out_dir: str, title: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.md_path = os.path.join(out_dir, "report.md")
        self.csv_path = os.path.join(out_dir, "report.csv")
        self.started = time.time()
        with open(self.md_path, "w") as f:
            f.write(f"# {title}\n\n")
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerow(self.CSV_COLUMNS)

    def _write(self, text: str) -> None:
        with open(self.md_path, "a") as f:
            f.write(text)
        print(text, end="", flush=True)

    def text(self, text: str) -> None:
        """Append a paragraph or heading (blank lines around it)."""
        self._write("\n" + text.strip("\n") + "\n\n")

    def table(self, columns: List[str]) -> None:
        """Start a Markdown table with ``columns``."""
        self._write("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n")

    def line(self, cells: Iterable) -> None:
        """A table row that is not a result (e.g. a skipped item)."""
        self._write("| " + " | ".join(str(c) for c in cells) + " |\n")

    def row(self, part: str, name: str, status: str, seconds: float, values: Dict, cells: Iterable) -> None:
        """One result: a Markdown table row of ``cells`` and a CSV row with ``values`` as JSON."""
        self.line(cells)
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([part, name, status, f"{seconds:.2f}", json.dumps(values, default=str)])

    def elapsed(self) -> float:
        return time.time() - self.started


def ml1m_shape_lengths(n_users: int = 6040, seed: int = 0) -> np.ndarray:
    """Per-user sequence lengths shaped like ML-1M's: at least 20, long tail, mean about 165.

    ML-1M has 6,040 users with 20 to 2,314 ratings each (mean 165.6, median 96); a log-normal
    with median 96 and sigma 1.04, clipped to that range, has the same median and mean.
    """
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.normal(np.log(96.0), 1.04, n_users))
    return np.clip(np.rint(lengths), 20, 2314).astype(np.int64)


def ml1m_shape_rows(lengths: np.ndarray, n_items: int = 3706, seed: int = 1):
    """Interactions for the users of ``lengths``: Zipf-like item popularity (exponent 0.8)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    weights /= weights.sum()
    for u, n in enumerate(lengths, 1):
        items = rng.choice(n_items, size=int(n), p=weights) + 1
        for t, item in enumerate(items):
            yield u, int(item), t


def train_samples(lengths: np.ndarray) -> int:
    """Training sequences RecBole builds from users of these lengths under leave-one-out
    (``LS: valid_and_test``): one per target position, less the last two (valid, test)."""
    return int(np.maximum(lengths - 3, 0).sum())


def suite_run(model: str, dataset: str, data_path: Optional[str], keys: Dict):
    """The pipeline's run (:class:`recbole_ext.pipeline.Run`) of ``model`` for the suite: quiet,
    no progress bars, ``keys`` on top."""
    from recbole_ext.pipeline import Run

    cfg = {"state": "ERROR", "show_progress": False}
    if data_path:
        cfg["data_path"] = data_path
    cfg.update(keys)
    return Run.resolve(model, dataset, config_dict=cfg)


def device_name() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores (torch {torch.__version__})"


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
