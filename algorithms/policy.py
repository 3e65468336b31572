"""A trained policy as ``marl_env`` sees one: state -> per-UE ``(points, channels, powers)``.

Loads the per-UE actor modules from an RLlib checkpoint (the critic is not needed to act) and works
for MAHPPO's hybrid actors and for the IPPO ablation's stock PPO modules alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mahppo.algorithms.modules import CRITIC_ID, HybridActorModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

POLICY_META = "mahppo_policy.json"
MODULES_SUBDIR = Path("learner_group") / "learner" / "rl_module"


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

        self.trunk = stack([layers(m.trunk) for m in modules])
        self.heads = [stack([layers(getattr(m, h)) for m in modules])
                      for h in ("point_head", "channel_head", "power_head")]
        self.p_max = torch.tensor([m.p_max for m in modules]).unsqueeze(1)

    @staticmethod
    def _mlp(h: torch.Tensor, layers, final_relu: bool) -> torch.Tensor:
        for i, (w, b) in enumerate(layers):
            h = torch.baddbmm(b, h, w)
            if final_relu or i < len(layers) - 1:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """States ``[M, obs]`` -> modes ``[G, M]``: point, channel and power (``p_max * sigmoid``)."""
        h = self._mlp(x.unsqueeze(0).expand(self.p_max.shape[0], -1, -1), self.trunk, final_relu=True)
        b = self._mlp(h, self.heads[0], final_relu=False).argmax(-1)
        c = self._mlp(h, self.heads[1], final_relu=False).argmax(-1)
        p = self.p_max * torch.sigmoid(self._mlp(h, self.heads[2], final_relu=False)[..., 0])
        return b, c, p


class TrainedPolicy:
    """Per-UE actors; ``act`` takes the global state (``marl_env`` normalisation), ``act_batch`` many."""

    def __init__(self, modules: dict[str, RLModule], meta: dict[str, Any] | None = None):
        self.modules = {a: modules[a] for a in sorted(modules, key=_agent_index)}
        self.agents = list(self.modules)
        self.meta = dict(meta or {})
        self.name = self.meta.get("policy_id", "trained")
        self._gen = torch.Generator().manual_seed(0)
        for m in self.modules.values():
            m.eval()
        # deterministic actions of same-shaped hybrid actors go through one fused forward per group
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(self.modules.values()):
            if isinstance(m, HybridActorModule):
                groups.setdefault((m.n_points, m.n_channels), []).append(i)
        self._fused = [(idx, FusedActors([list(self.modules.values())[i] for i in idx])) for idx in groups.values()]
        self._fused_agents = {i for idx, _ in self._fused for i in idx}

    @property
    def env_defaults(self) -> dict[str, Any]:
        """The env the policy was trained for (N, C, DNNs, beta, profile), without the scenario."""
        cfg = dict(self.meta.get("env_config", {}))
        for key in ("scenario", "max_frames", "render_mode"):
            cfg.pop(key, None)
        return cfg

    def reset(self, env: Any, seed: int | None = None) -> None:
        if list(env.possible_agents) != self.agents:
            raise ValueError(f"policy {self.name} was trained for {len(self.agents)} UEs "
                             f"({', '.join(self.agents)}); the env has {len(env.possible_agents)}")
        for agent, module in self.modules.items():  # same points, channels and p_max per UE
            trained, wanted = _space_sizes(module.action_space), _space_sizes(env.action_space(agent))
            if trained != wanted:
                raise ValueError(
                    f"policy {self.name}: {agent} was trained for (points, channels, p_max) = {trained}; "
                    f"the env gives {wanted} (check --num-channels, --dnn, --profile)")
        if seed is not None:
            self._gen.manual_seed(seed)

    def act(self, state: np.ndarray, deterministic: bool = True):
        pts, chs, pws = self.act_batch(np.asarray(state, dtype=np.float32)[None, :], deterministic)
        return pts[0], chs[0], pws[0]

    @torch.no_grad()
    def act_batch(self, states: np.ndarray, deterministic: bool = True):
        """Actions for a batch of global states ``[M, 4N]`` -> three ``[M, N]`` arrays."""
        x = torch.as_tensor(np.asarray(states, dtype=np.float32))
        m = x.shape[0]
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
                out = module.dist_inputs(x)
                if deterministic:  # the mode of each branch
                    b = out[:, :module.n_points].argmax(-1)
                    c = out[:, module.n_points:module.n_points + module.n_channels].argmax(-1)
                    p = out[:, module.n_points + module.n_channels]
                else:
                    dist = module.get_inference_action_dist_cls().from_logits(out)
                    b, c, p = dist.sample()
                p_max = module.p_max
            else:  # stock RLlib modules (IPPO)
                out = module.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
                dist = module.get_inference_action_dist_cls().from_logits(out)
                b, c, p = (dist.to_deterministic() if deterministic else dist).sample()
                p_max = float(module.action_space.spaces[2].high.reshape(-1)[0])
            pts[:, i] = b.reshape(m).numpy()
            chs[:, i] = c.reshape(m).numpy()
            pws[:, i] = np.clip(p.reshape(m).numpy(), 0.0, p_max)
        return pts, chs, pws


def _space_sizes(space: Any) -> tuple[int, int, float]:
    b, c, p = space.spaces
    return int(b.n), int(c.n), round(float(p.high.reshape(-1)[0]), 6)


def _agent_index(agent: str) -> int:
    try:
        return int(agent.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or the newest complete checkpoint of a ``mahppo train --out`` dir."""
    path = Path(path)
    if (path / POLICY_META).is_file():
        return path
    ckpts = sorted(p.parent for p in (path / "checkpoints").glob(f"*/{POLICY_META}")) if path.is_dir() else []
    if not ckpts:
        raise FileNotFoundError(f"{path}: no checkpoint (expected {POLICY_META} here or under checkpoints/)")
    return ckpts[-1]


MODEL_URI_PREFIXES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_model_uri(spec: str | Path) -> bool:
    return isinstance(spec, str) and spec.startswith(MODEL_URI_PREFIXES)


def download_model(uri: str) -> Path:
    """Fetch an MLflow model / run-artifact URI (e.g. the Tune winner) to a local directory."""
    import mlflow
    from mahppo.algorithms.tracking import tracking_uri

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
    meta = json.loads((ckpt / POLICY_META).read_text())
    mod_dir = ckpt / MODULES_SUBDIR
    modules = {}
    for sub in sorted(mod_dir.iterdir()):
        if sub.is_dir() and sub.name != CRITIC_ID:
            modules[sub.name] = RLModule.from_checkpoint(sub)
    if not modules:
        raise FileNotFoundError(f"{ckpt}: no actor modules under {MODULES_SUBDIR}")
    meta.setdefault("checkpoint", str(ckpt))
    return TrainedPolicy(modules, meta)


def live_policy(algo: Any, agents: list[str], meta: dict[str, Any] | None = None) -> TrainedPolicy:
    """The current actors of a running RLlib algorithm (for evaluation during training)."""
    return TrainedPolicy({a: algo.get_module(a) for a in agents}, meta)
