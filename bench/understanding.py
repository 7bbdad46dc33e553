"""How long the understanding step takes per message (issue 12 asks at most 1 ms p99).

Runs `bot.chat.understanding.understand` uncached over every customer message of the
conversation corpus (tests/conversation/corpus.txt), many times, and prints p50/p99.

    .venv/bin/python bench/understanding.py
"""

from __future__ import annotations

import time
from pathlib import Path

from bot.chat.understanding import understand

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "conversation" / "corpus.txt"
ROUNDS = 50


def main() -> None:
    lines = [line.split("=>")[0].strip() for line in CORPUS.read_text(encoding="utf-8").splitlines()
             if "=>" in line and not line.startswith("#")]
    uncached = understand.__wrapped__
    for text in lines:  # warm up (cn2an's first call, compiled patterns)
        uncached(text)
    took = []
    for _ in range(ROUNDS):
        for text in lines:
            start = time.perf_counter()
            uncached(text)
            took.append(time.perf_counter() - start)
    took.sort()
    p50, p99 = took[len(took) // 2], took[int(len(took) * 0.99)]
    print(f"understanding: {len(lines)} messages x {ROUNDS}: p50 {p50 * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us"
          f" (budget 1000 us)")


if __name__ == "__main__":
    main()
