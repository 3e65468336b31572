"""A trained policy as ``marl_env`` sees one: ``act(view)`` -> per-UE ``(points, channels, powers)``.

Three kinds of actor modules, loaded from an RLlib checkpoint (the critic is not needed to act):

- the paper's per-UE ``HybridActorModule`` s (one per ``ue_i``, input the global state): tied to the
  N, DNNs and UE order they were trained on;
- one ``SharedActorModule`` (``--actor shared``): input each UE's agent-centric observation, so it
  decides any cell (any N up to ``marl_env.config.MAX_UES``), any order, any DNN of its profile file;
- RLlib's stock PPO modules (the IPPO ablation).

Deterministic actions are the mode of each branch (``codec.HybridHead.mode``); same-shaped per-UE
actors run as one fused forward (``FusedActors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from mahppo.algorithms.rllib.modules import SHARED_ID, HybridActorModule, SharedActorModule
from mahppo.algorithms.runs.checkpoints import POLICY_META, find_for_acting, load_acting_modules, read_meta
from mahppo.marl_env.config import MAX_UES, EnvConfig
from mahppo.marl_env.observations import stamp_frames
from mahppo.marl_env.profiles import same_profile


class FusedActors:
    """The deterministic forward pass of many same-shaped hybrid actors at once.

    Every layer's weights are stacked over actors, so one batched matmul per layer serves all UEs
    instead of one small matmul per UE and layer (per-op overhead dominates such tiny MLPs). A
    snapshot: build it again after the actors' weights change.
    """

    def __init__(self, modules: list[HybridActorModule]):
        def layers(seq: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [(m.weight, m.bias) for m in seq.modules() if isinstance(m, torch.nn.Linear)]

        def stack(parts: list[list[tuple[torch.Tensor, torch.Tensor]]]):
            return [(torch.stack([p[i][0].detach().transpose(0, 1) for p in parts]),
                     torch.stack([p[i][1].detach() for p in parts]).unsqueeze(1)) for i in range(len(parts[0]))]

        self.head = modules[0].head
        self.trunk = stack([layers(m.trunk) for m in modules])
        self.heads = [stack([layers(getattr(m, h)) for m in modules])
                      for h in ("point_head", "channel_head", "power_head")]
        self.p_max = torch.tensor([m.p_max for m in modules]).reshape(-1, 1, 1)

    @staticmethod
    def _mlp(h: torch.Tensor, layers, final_relu: bool) -> torch.Tensor:
        for i, (w, b) in enumerate(layers):
            h = torch.baddbmm(b, h, w)
            if final_relu or i < len(layers) - 1:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """States ``[M, obs]`` -> modes ``[G, M]``: point, channel and power."""
        h = self._mlp(x.unsqueeze(0).expand(self.p_max.shape[0], -1, -1), self.trunk, final_relu=True)
        rows = self.head.encode(*(self._mlp(h, layers, final_relu=False) for layers in self.heads), p_max=self.p_max)
        return self.head.mode(rows)


class TrainedPolicy:
    """A checkpoint's actors; ``act(view)`` for one frame, ``act_batch`` for many cells at once. ``env``: the cell
    it was trained for (``EnvConfig.cell()``), read once from the sidecar; evaluation and Serve start from it."""

    def __init__(self, modules: dict[str, RLModule], meta: dict[str, Any] | None = None, env: EnvConfig | None = None):
        self.meta = dict(meta or {})
        self.name = self.meta.get("policy_id", "trained")
        if env is None:
            data = self.meta.get("experiment", {}).get("env")
            if data is None:
                raise ValueError(f"policy {self.name}: its sidecar has no experiment.env (the cell it was trained for)")
            env = EnvConfig.from_dict(data)
        self.env = env.cell()
        self.shared = SHARED_ID in modules
        self.modules = {a: modules[a] for a in sorted(modules, key=_agent_index)}
        self.agents = [] if self.shared else list(self.modules)
        self._gen = torch.Generator().manual_seed(0)
        for m in self.modules.values():
            m.eval()
        self._fused: list[tuple[list[int], FusedActors]] = []
        if not self.shared:  # same-shaped hybrid actors: one fused deterministic forward per group
            groups: dict[tuple, list[int]] = {}
            for i, m in enumerate(self.modules.values()):
                if isinstance(m, HybridActorModule):
                    groups.setdefault((m.n_points, m.n_channels), []).append(i)
            mods = list(self.modules.values())
            self._fused = [(idx, FusedActors([mods[i] for i in idx])) for idx in groups.values()]
        self._fused_agents = {i for idx, _ in self._fused for i in idx}

    @property
    def max_ues(self) -> int | None:
        """The most UEs a shared policy decides at once (``None``: a per-UE policy, exactly its N): the
        training cell's cap if it had one, else ``MAX_UES`` (the set model itself takes any N)."""
        if not self.shared:
            return None
        return self.env.max_ues or MAX_UES

    def check_cell(self, config: EnvConfig) -> None:
        """Refuse a cell this policy cannot decide, naming what differs."""
        trained = self.env
        if self.shared:
            if config.num_ues > self.max_ues:
                raise ValueError(f"policy {self.name} decides at most max_ues = {self.max_ues} UEs; the cell has "
                                 f"{config.num_ues}")
            head = self.modules[SHARED_ID].head
            if config.num_channels != head.n_channels or abs(config.p_max_w - head.p_max) > 1e-9:
                raise ValueError(f"policy {self.name} was trained for C = {head.n_channels}, p_max = {head.p_max} W; "
                                 f"the cell has C = {config.num_channels}, p_max = {config.p_max_w} W")
            return
        if config.num_ues != len(self.agents):
            raise ValueError(f"policy {self.name} was trained for {len(self.agents)} UEs ({', '.join(self.agents)}); "
                             f"the cell has {config.num_ues} (a per-UE policy is tied to its N: train "
                             "`--actor shared` for any cell)")
        wanted = [(p.num_actions, config.num_channels, round(config.p_max_w, 6)) for p in config.profiles]
        for (agent, module), want in zip(self.modules.items(), wanted, strict=True):
            have = _space_sizes(module.action_space)
            if have != want:
                raise ValueError(f"policy {self.name}: {agent} was trained for (points, channels, p_max) = {have}; "
                                 f"the env gives {want} (check --num-channels, --dnn, --profile)")
        for i, (a, b) in enumerate(zip(trained.specs, config.specs, strict=True)):
            if a.dnn != b.dnn:
                raise ValueError(f"policy {self.name}: ue_{i} was trained on dnn {a.dnn!r}; the cell gives "
                                 f"{b.dnn!r} (a per-UE policy is tied to its DNNs)")
        for i, (a, b) in enumerate(zip(trained.profiles, config.profiles, strict=True)):
            if not same_profile(a, b):
                raise ValueError(
                    f"policy {self.name}: ue_{i} was trained on the {a.name!r} profile of "
                    f"{trained.profile_file or 'the shipped Jetson Nano profiles'}; the cell's {b.name!r} "
                    f"profile ({config.profile_file or 'the shipped Jetson Nano profiles'}) has other costs "
                    "per partition point (check --profile)")

    def reset(self, env: Any, seed: int | None = None) -> None:
        """Check that the policy can decide ``env``'s cell (a ``CollabInferenceEnv`` or its ``env.view()``;
        ``ValueError`` names what differs) and reseed the sampling of ``act(..., deterministic=False)``."""
        self.check_cell(_view(env).config)
        if seed is not None:
            self._gen.manual_seed(seed)

    def act_dict(self, observations: dict[str, Any], deterministic: bool = True) -> dict[str, tuple]:
        """A PettingZoo action dict for one frame: ``{agent: (point, channel, np.array([power]))}`` from the
        observations ``env.reset()`` / ``env.step()`` returned (the shared policy: each agent's agent-centric
        observation; a per-UE policy: the global state, the same for every agent)::

            obs, _ = env.reset(seed=0)
            while env.agents:
                obs, rewards, terms, truncs, infos = env.step(policy.act_dict(obs))
        """
        agents = list(observations)
        if not agents:
            return {}
        if self.shared:
            x = np.stack([np.asarray(observations[a], dtype=np.float32) for a in agents])
            want = self.modules[SHARED_ID].observation_space.shape[0]
            if x.ndim != 2 or x.shape[1] != want:
                raise ValueError(f"policy {self.name} takes agent-centric observations of {want} numbers (obs_mode = "
                                 f"'agent'); got shape {x.shape[1:]}: build the env with "
                                 "parallel_env(**policy.env.to_dict())")
            pts, chs, pws = (a[:, 0] for a in self.act_batch(x, deterministic))
            cols = range(len(agents))
        else:
            state = np.asarray(observations[agents[0]], dtype=np.float32)
            if state.shape != (4 * len(self.agents),):
                raise ValueError(f"policy {self.name} takes the global state of {4 * len(self.agents)} numbers "
                                 f"(obs_mode = 'global', N = {len(self.agents)}); got shape {state.shape}")
            pts, chs, pws = (a[0] for a in self.act_batch(state[None, :], deterministic))
            cols = [_agent_index(a) for a in agents]
        return {a: (int(pts[i]), int(chs[i]), np.array([pws[i]], dtype=np.float32))
                for a, i in zip(agents, cols, strict=True)}

    def act(self, view: Any, deterministic: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next frame's decisions for every UE of ``view`` (a ``marl_env`` ``SystemView``, or the env itself)
        as three arrays in agent order (points, channels, powers; ``act_dict`` gives PettingZoo's action dict)."""
        view = _view(view)
        if self.shared:
            obs = view.observations()
            pts, chs, pws = self.act_batch(obs, deterministic)
            return pts[:, 0], chs[:, 0], pws[:, 0]
        pts, chs, pws = self.act_batch(np.asarray(view.state(), dtype=np.float32)[None, :], deterministic)
        return pts[0], chs[0], pws[0]

    def act_many(self, views: list[Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``act`` for many cells (``SystemView``s) in one forward pass (a planner's rollouts:
        ``marl_env.lookahead``)."""
        if not views:
            return []
        if self.shared:
            obs = stamp_frames([v.observations() for v in views])
            pts, chs, pws = (a[:, 0] for a in self.act_batch(obs))
            cuts = np.cumsum([v.num_ues for v in views])[:-1]
            return list(zip(np.split(pts, cuts), np.split(chs, cuts), np.split(pws, cuts), strict=True))
        states = np.stack([np.asarray(v.state(), dtype=np.float32) for v in views])
        pts, chs, pws = self.act_batch(states)
        return list(zip(pts, chs, pws, strict=True))

    @torch.no_grad()
    def act_batch(self, inputs: np.ndarray, deterministic: bool = True):
        """Per-UE policy: global states ``[M, 4N]`` -> three ``[M, N]`` arrays. Shared policy: agent
        observations ``[R, obs]`` (any UEs of any cells) -> three ``[R, 1]`` arrays."""
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        m = x.shape[0]
        if self.shared:
            module = self.modules[SHARED_ID]
            rows = module.dist_inputs(x)
            b, c, p = module.head.mode(rows) if deterministic else _sample(module.head.dist(rows))
            return (b.reshape(m, 1).numpy(), c.reshape(m, 1).numpy(),
                    p.reshape(m, 1).numpy().astype(np.float64))
        n = len(self.agents)
        pts = np.empty((m, n), dtype=np.int64)
        chs = np.empty((m, n), dtype=np.int64)
        pws = np.empty((m, n), dtype=np.float64)
        if deterministic:
            for idx, fused in self._fused:
                b, c, p = fused(x)
                pts[:, idx] = b.T.numpy()
                chs[:, idx] = c.T.numpy()
                pws[:, idx] = p.T.numpy()
        for i, agent in enumerate(self.agents):
            if deterministic and i in self._fused_agents:
                continue
            module = self.modules[agent]
            if isinstance(module, HybridActorModule):
                rows = module.dist_inputs(x)
                b, c, p = module.head.mode(rows) if deterministic else _sample(module.head.dist(rows))
            else:  # stock RLlib modules (IPPO)
                out = module.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
                dist = module.get_inference_action_dist_cls().from_logits(out)
                b, c, p = (dist.to_deterministic() if deterministic else dist).sample()
            pts[:, i] = b.reshape(m).numpy()
            chs[:, i] = c.reshape(m).numpy()
            pws[:, i] = p.reshape(m).numpy()
        return pts, chs, pws


def _view(env: Any) -> Any:
    """A ``SystemView`` from an env (``env.view()``) or the view itself."""
    return env.view() if callable(getattr(env, "view", None)) else env


def _sample(dist: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, c, p = dist.sample()
    return b, c, p[..., 0]


def _space_sizes(space: Any) -> tuple[int, int, float]:
    b, c, p = space.spaces
    return int(b.n), int(c.n), round(float(p.high.reshape(-1)[0]), 6)


def _agent_index(agent: str) -> int:
    try:
        return int(agent.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory (its weights-only export verified), the newest usable checkpoint of a
    ``mahppo train --out`` dir as its ``checkpoints.json`` records it, or the checkpoint inside an MLflow
    pyfunc model directory (``serve.mlflow_model``: the Tune champion)."""
    path = Path(path)
    if (path / "MLmodel").is_file():
        found = sorted(p.parent for p in (path / "artifacts").glob(f"*/{POLICY_META}"))
        if found:
            return find_for_acting(found[0])
    return find_for_acting(path)


MODEL_URI_PREFIXES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_model_uri(spec: str | Path) -> bool:
    return isinstance(spec, str) and spec.startswith(MODEL_URI_PREFIXES)


def download_model(uri: str) -> Path:
    """Fetch an MLflow model / run-artifact URI (e.g. the Tune winner) to a local directory."""
    import mlflow

    from mahppo.algorithms.runs.tracking import check_reachable, tracking_uri

    check_reachable(tracking_uri())
    mlflow.set_tracking_uri(tracking_uri())
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:  # MLflow raises several types for a bad URI
        raise FileNotFoundError(f"model URI {uri!r}: {exc}") from None


def load_policy(path: str | Path) -> TrainedPolicy:
    """Load the actors of a checkpoint, of the latest checkpoint of a training run, or of an MLflow
    model URI (``models:/NAME/VERSION``, ``runs:/RUN_ID/checkpoint``)."""
    if is_model_uri(path):
        path = download_model(str(path))
    ckpt = find_checkpoint(Path(path).expanduser().resolve())
    read_meta(ckpt)
    modules, meta = load_acting_modules(ckpt)  # JSON + safetensors only: never RLlib's pickles
    meta = {k: v for k, v in meta.items() if k not in ("files", "export")}
    meta.setdefault("checkpoint", str(ckpt))
    return TrainedPolicy(modules, meta)


def live_policy(algo: Any, experiment: Any, meta: dict[str, Any] | None = None) -> TrainedPolicy:
    """The current actors of a running RLlib algorithm (for evaluation during training)."""
    shared = experiment.run.algo == "mahppo" and experiment.algo.actor == "shared"
    ids = [SHARED_ID] if shared else [f"ue_{i}" for i in range(experiment.env.num_ues)]
    return TrainedPolicy({m: algo.get_module(m) for m in ids}, meta, env=experiment.env)


__all__ = ["FusedActors", "SharedActorModule", "TrainedPolicy", "find_checkpoint", "live_policy", "load_policy"]
