"""Human-normalized Atari scores, the DQN paper's way: 100 * (score - random) / (human - random), with the random and
human scores of its Extended Data Table 2 (`atari_scores.csv`, 49 games, its source in its header)."""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

from rlexp.errors import ConfigError

SCORES_FILE = Path(__file__).with_name("atari_scores.csv")


@functools.cache
def reference_scores() -> dict[str, tuple[float, float]]:
    """game -> (random, human)."""
    with SCORES_FILE.open() as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {row["game"]: (float(row["random"]), float(row["human"])) for row in rows}


def game_of(env_id: str) -> str:
    """The game of an Atari env id: ALE/Pong-v5, PongNoFrameskip-v4 and Pong-v4 are all Pong."""
    name = env_id.split("/", 1)[1] if env_id.startswith("ALE/") else env_id
    return re.sub(r"(NoFrameskip|Deterministic)?-v\d+$", "", name)


def human_normalized(score: float, env_id: str) -> float:
    """100 * (score - random) / (human - random): 0 plays as a random policy, 100 as the paper's human tester."""
    game = game_of(env_id)
    scores = reference_scores()
    if game not in scores:
        raise ConfigError(f"normalize=human: {env_id} ({game}) is not one of the 49 games with random and human "
                          f"scores in the DQN paper (rlexp/envs/atari_scores.csv): {', '.join(sorted(scores))}")
    random, human = scores[game]
    return 100.0 * (score - random) / (human - random)
