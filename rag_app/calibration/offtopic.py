"""The shipped pool of generic off-topic questions (Chinese and English, written for this project).

Everyday life, sport, cooking, travel, health, law, technology, history, entertainment...: what a
team's documents normally do not answer. Calibration scores them against a knowledge base to see
what "not covered here" looks like for it.
"""
from __future__ import annotations

import random
from pathlib import Path

DATA = Path(__file__).with_name("data")
POOLS = {"zh": DATA / "offtopic_zh.txt", "en": DATA / "offtopic_en.txt"}


def load_pool(language: str) -> list[str]:
    """Every question of one language's pool, in file order (``#`` lines are comments)."""
    lines = POOLS[language].read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def offtopic_questions(per_language: int, seed: int = 0) -> dict[str, str]:
    """A seeded sample of up to ``per_language`` questions from each pool, keyed ``zh:12``/``en:3``."""
    out: dict[str, str] = {}
    for language in POOLS:
        pool = load_pool(language)
        picked = sorted(random.Random(seed).sample(range(len(pool)), min(per_language, len(pool))))
        out.update({f"{language}:{i}": pool[i] for i in picked})
    return out
