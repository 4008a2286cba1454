"""`rlexp eval <run> embed=true`: the projector files, read back by TensorBoard's own projector plugin, and the
t-SNE."""

import csv
import json
import shutil
import sys

import numpy as np
import pytest
import torch

import rlexp
from rlexp.analysis.embedding import check_libraries, play
from rlexp.errors import ConfigError
from tests.conftest import TINY, run_cli, run_in_process
from tests.test_heldout import RUNS as HELDOUT_RUNS
from tests.test_heldout import trained

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def projector(logdir):
    """GET a route of TensorBoard's projector plugin over `logdir`, as the Projector tab does."""
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    plugin = ProjectorPlugin(base_plugin.TBContext(logdir=str(logdir)))
    routes = {"config": plugin._serve_config, "tensor": plugin._serve_tensor, "metadata": plugin._serve_metadata,
              "sprite": plugin._serve_sprite_image}

    def get(route: str, **query: str) -> bytes:
        response = Client(routes[route]).get("/", query_string={"run": ".", **query})
        assert response.status_code == 200, response.get_data()
        return response.get_data()
    return get


@pytest.mark.parametrize("name, train", [
    ("dqn", HELDOUT_RUNS["dqn"][0]),
    pytest.param("ppo", ["algo=ppo", "env=Pendulum-v1", "total_steps=256", "algo.n_steps=64", "env.num_envs=2",
                         "algo.batch_size=64", "env.normalize.obs=true"], marks=pytest.mark.slow),
])
def test_the_projector_holds_each_states_activations_and_metadata(workdir, tmp_path_factory, name, train):
    if name == "dqn":   # the held-out-index test's run (the same command and 64 held-out states), copied
        shutil.copytree(trained(tmp_path_factory, "dqn"), workdir / "run", symlinks=True)
    else:
        assert run_cli(["train", *train, "hydra.run.dir=run", *TINY], cwd=workdir).returncode == 0
    proc = run_cli(["eval", "run", "episodes=2", "embed=true", "embed.states=300"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "t-SNE of 300 states: run/eval/final_tsne.png" in proc.stdout
    assert (workdir / "run" / "eval" / "final_tsne.png").read_bytes()[:8] == PNG_MAGIC

    # What the plugin serves: the last hidden layer of the states the deterministic agent met, in order.
    get = projector(workdir / "run" / "eval" / "final_embedding")
    embedding = json.loads(get("config"))["embeddings"][0]
    tensor = np.frombuffer(get("tensor", name=embedding["tensorName"]), np.float32).reshape(300, -1)
    agent = rlexp.load(workdir / "run", device="cpu")
    seed = agent.config["seed"] + 10_000
    played = play(agent, 300, seed)
    states = played.observations if agent.normalization is None else \
        agent.normalization.observations(played.observations, update=False)
    features, values = agent.agent.representation(torch.as_tensor(states, dtype=torch.float32))
    np.testing.assert_allclose(tensor, features.numpy(), rtol=1e-5, atol=1e-5)
    rows = get("metadata", name=embedding["tensorName"]).decode().splitlines()
    assert rows[0].split("\t") == ["value", "episode_return", "episode", "step_in_episode", "action"]
    first = rows[1].split("\t")
    assert len(rows) == 301 and float(first[0]) == pytest.approx(float(values[0]), rel=1e-4)
    assert first[2:4] == ["0", "0"] and float(first[1]) == pytest.approx(played.episode_return[0])
    with (workdir / "run" / "eval" / "final_tsne.csv").open() as f:
        points = list(csv.DictReader(f))
    assert len(points) == 300 and all(np.isfinite([float(p["x"]), float(p["y"])]).all() for p in points)


@pytest.mark.slow   # (a Pong run; the default suite reads the projector back on DQN CartPole)
def test_atari_states_come_with_their_frames_as_sprites(workdir):
    train = ["algo=dqn", "env=atari", "env.id=ALE/Pong-v5", "total_steps=300", "algo.learning_starts=200",
             "algo.buffer_size=500", "+env.kwargs.max_num_frames_per_episode=400"]
    assert run_cli(["train", *train, "hydra.run.dir=run", *TINY, "eval.episodes=1"], cwd=workdir).returncode == 0
    proc = run_cli(["eval", "run", "episodes=1", "embed=true", "embed.states=120"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    get = projector(workdir / "run" / "eval" / "final_embedding")
    embedding = json.loads(get("config"))["embeddings"][0]
    assert embedding["sprite"]["singleImageDim"] == [84, 84]
    assert get("sprite", name=embedding["tensorName"])[:8] == PNG_MAGIC
    assert np.frombuffer(get("tensor", name=embedding["tensorName"]), np.float32).size == 120 * 512


def test_without_scikit_learn_embed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ConfigError, match=r'sklearn is not installed; fix: pip install "rlexp\[embed\]"'):
        check_libraries()


@pytest.mark.parametrize("args, message", [
    (["embed=true", "embed.states=0"], "embed.states=0 must be a positive integer"),
    (["embed=true", "embed.states=1"], "embed.states=1: a t-SNE map needs at least 2 states"),
    (["embed.states=50"], "embed.states sets how many states embed=true maps; add embed=true"),
    (["embed=true", "embed=false"], "embed is given twice"),
])
def test_bad_embed_options_are_one_line_errors(workdir, args, message, capsys, monkeypatch):
    proc = run_in_process(["eval", "run", *args], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
