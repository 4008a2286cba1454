"""`rlexp eval <run> embed=true`: what the network learned, as the DQN paper's Figure 4 shows it.

The agent plays deterministic evaluation episodes until `states` states are collected (the last episode is played to
its end, so every state has its episode's return); for each state the last hidden layer of the network that values
states (`Agent.representation`: DQN's Q-network, the first critic at the policy's action, PPO's and A2C's value
network) and the value it predicts. Written:

- a TensorBoard projector embedding (`SummaryWriter.add_embedding`): the activations, a metadata row per state
  (predicted value, episode return, episode, step in the episode, action) and, for image observations, the last
  frame of each state as its sprite; TensorBoard's Projector tab runs t-SNE (or PCA, UMAP) on it interactively;
- a 2-D t-SNE of the activations (scikit-learn's TSNE) as a PNG coloured by the predicted value, and its points
  as CSV: states the network values alike should sit together.
"""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlexp.analysis.figures import import_matplotlib
from rlexp.deploy.load import LoadedAgent
from rlexp.errors import needs_extra

HEADER = ["value", "episode_return", "episode", "step_in_episode", "action"]
#: TensorBoard's projector shows sprite sheets up to 8192 pixels on a side.
MAX_SPRITE_SHEET = 8192
BATCH = 512


@dataclass(frozen=True)
class Embedding:
    projector_dir: Path
    png: Path
    csv: Path
    states: int


@dataclass(frozen=True)
class PlayedStates:
    observations: np.ndarray     # raw, as the env returned them
    actions: list[str]
    episode: np.ndarray
    step_in_episode: np.ndarray
    episode_return: np.ndarray


def check_libraries() -> None:
    with needs_extra("embed", "embed=true draws its t-SNE with scikit-learn and matplotlib ($missing is not "
                              "installed; fix: $fix)"):
        import_matplotlib()
        import sklearn  # noqa: F401


def play(loaded: LoadedAgent, count: int, seed: int) -> PlayedStates:
    """At least `count` states of whole deterministic episodes, then the first `count` of them."""
    env = loaded.make_packed_env()   # (Dict/Tuple observations packed: one array each)
    observations: list[np.ndarray] = []
    actions: list[str] = []
    episodes: list[int] = []
    steps: list[int] = []
    returns: list[float] = []
    obs, _ = env.reset(seed=seed)
    episode = 0
    while True:
        start, total, done = len(observations), 0.0, False
        while not done:
            action = loaded.act_on_env(obs)
            observations.append(np.array(obs))
            actions.append(" ".join(f"{a:.4g}" for a in np.ravel(action)))
            episodes.append(episode)
            steps.append(len(observations) - start - 1)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.extend([total] * (len(observations) - start))
        episode += 1
        if len(observations) >= count:
            break
        obs, _ = env.reset()
    env.close()
    return PlayedStates(np.stack(observations[:count]), actions[:count], np.array(episodes[:count]),
                        np.array(steps[:count]), np.array(returns[:count]))


@torch.no_grad()
def representation(loaded: LoadedAgent, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(last hidden layer, predicted value) of each state, normalized as the agent's inputs, in batches."""
    from rlexp.agents.base import obs_tensor

    features, values = [], []
    for start in range(0, len(observations), BATCH):
        batch = observations[start:start + BATCH]
        if loaded.normalization is not None:
            batch = loaded.normalization.observations(batch, update=False)
        f, v = loaded.agent.representation(obs_tensor(batch, loaded.device))
        features.append(f.float().cpu().numpy())
        values.append(v.float().cpu().numpy())
    return np.concatenate(features), np.concatenate(values)


def sprites(observations: np.ndarray, channels_last: bool = False) -> torch.Tensor:
    """The last frame of each stacked-frame state, (N, 1, H, W) in [0, 1], shrunk to fit one sprite sheet; of a
    channel-last image (H, W, C), the image itself (its first 3 channels: RGB of RGBA)."""
    images = np.moveaxis(observations, -1, 1)[:, :3] if channels_last else observations[:, -1:]
    frames = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32) / 255.0
    side = max(1, min(frames.shape[-1], MAX_SPRITE_SHEET // math.ceil(math.sqrt(len(frames)))))
    if side < frames.shape[-1]:
        frames = torch.nn.functional.interpolate(frames, size=(side, side), mode="area")
    return frames


def tsne(features: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(1.0, (len(features) - 1) / 3))   # TSNE needs perplexity < n_samples
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def draw(points: np.ndarray, values: np.ndarray, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 6), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    scatter = axes.scatter(points[:, 0], points[:, 1], c=values, cmap="viridis", s=6, linewidths=0)
    figure.colorbar(scatter, ax=axes, label="predicted value")
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.savefig(path)


def embed(loaded: LoadedAgent, out_dir: Path, name: str, count: int, seed: int) -> Embedding:
    """Play, compute and write the projector embedding, the t-SNE PNG and its CSV under `out_dir`."""
    from torch.utils.tensorboard import SummaryWriter

    check_libraries()
    played = play(loaded, count, seed)
    features, values = representation(loaded, played.observations)
    rows = [[f"{v:.6g}", f"{r:.6g}", str(e), str(s), a] for v, r, e, s, a in
            zip(values, played.episode_return, played.episode, played.step_in_episode, played.actions)]
    points = tsne(features, seed)   # before anything is written: a failure leaves no half embedding
    projector_dir = out_dir / f"{name}_embedding"
    if projector_dir.is_dir():   # an earlier embed=true of this checkpoint: the projector would list it twice
        shutil.rmtree(projector_dir)
    with SummaryWriter(str(projector_dir)) as writer:
        writer.add_embedding(torch.as_tensor(features), metadata=rows, metadata_header=HEADER,
                             label_img=sprites(played.observations, loaded.spaces.channels_last)
                             if loaded.spaces.frames else None,
                             tag=f"{loaded.algo}_{loaded.env_id.replace('/', '_')}_{name}", global_step=loaded.step)
    png, table = out_dir / f"{name}_tsne.png", out_dir / f"{name}_tsne.csv"
    draw(points, values, f"t-SNE of {loaded.algo}'s last hidden layer\n{loaded.env_id}, step {loaded.step}, "
                         f"{len(values)} states", png)
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", *HEADER])
        writer.writerows([f"{x:.6g}", f"{y:.6g}", *row] for (x, y), row in zip(points, rows))
    return Embedding(projector_dir, png, table, len(values))
