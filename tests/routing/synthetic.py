"""Small synthetic RouteLLM-style data shared by the routing tests.

Long multi-step word problems and long legal questions with a negation are what only
the strong model solves; one-line sums and short trivia are solved by both. Each
segment (free-form, multiple-choice) has both kinds, so a learner must find the signal
inside each segment, not just tell the formats apart.
"""

from __future__ import annotations

import csv
from pathlib import Path


def synthetic_rows(n: int = 120) -> list[tuple[str, int, int, str]]:
    rows: list[tuple[str, int, int, str]] = []
    for i in range(n):
        if i % 2 == 0 and i % 6:
            prompt = (
                f"A shop sells {i + 3} boxes of {i % 7 + 2} pens for ${i + 11}. Then it buys "
                f"{i * 3 + 5} more, sells half, and each costs {i % 5 + 1}. How many dollars "
                f"remain after {i % 4 + 2} days? Item {i}."
            )
            weak, strong, source = 0, 1, "gsm8k"
        elif i % 2 == 0:
            prompt = f"What is {i} plus one?"
            weak, strong, source = 1, 1, "gsm8k"
        elif i % 5 == 0:
            prompt = (
                f"Case {i}: the plaintiff sued the defendant for breach of a lease covenant; "
                "the court heard evidence of negligence. Which claim would NOT succeed?\n"
                "A. Damages for the breach of covenant by the tenant\nB. An injunction\n"
                "C. Rescission of the mortgage deed\nD. None of the above\nAnswer:"
            )
            weak, strong, source = 0, 1, "mmlu/law"
        else:
            prompt = (
                f"Which colour is the sky on a clear day, item {i}?\nA. Blue\nB. Green\n"
                "C. Red\nD. Black\nAnswer:"
            )
            weak, strong, source = 1, 1, "mmlu/misc"
        rows.append((prompt, weak, strong, source))
    return rows


def write_csv(path: Path, rows: list[tuple[str, int, int, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "weak_correct", "strong_correct", "source"])
        writer.writerows(rows)
    return path
