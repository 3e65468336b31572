"""A vectorised sampler inside RLlib: ``VectorEnvRunner`` steps M env copies as arrays.

RLlib's ``MultiAgentEnvRunner`` spends most of a MAHPPO rollout on per-step bookkeeping: two
connector pipelines, one ``add_env_step`` per env copy, one metrics call per agent, per step. This
runner keeps RLlib's env copies, modules, spaces, connectors (after sampling), metrics, checkpoints
and remote scale-out, and replaces only the sampling loop:

- per step, ONE forward per RL module over every acting agent of every copy mapped to it (agents are
  grouped by module id through the config's ``policy_mapping_fn``; one module per UE, one shared
  module, or anything in between), then the module's own exploration distribution samples the
  actions and gives their log-probabilities, exactly as RLlib's ``GetActions`` connector does;
- the envs are stepped with ``step_arrays(points, channels, powers)`` (arrays in ``env.agents``
  order) instead of action dicts;
- every step's data goes into preallocated arrays; RLlib ``MultiAgentEpisode`` s (numpy'd chunks,
  with RLlib's lookback, ids and timestep mapping) are built once per rollout.

It reproduces RLlib's default sampling exactly, random draws included: the same env seeds, the
same next-step auto-reset, the same module and row order of the forward passes (the order RLlib's
connectors produce), so for a fixed seed and fixed weights the episodes match RLlib's
(``tests/test_sampler.py``). Anything this loop does not reproduce (custom env-to-module or
module-to-env connectors, action normalisation or clipping, per-episode callbacks, stateful
modules, ``explore=False``, sampling by episodes, envs without ``step_arrays``) falls back to
RLlib's own loop, with a one-time warning that says why.

Assumptions about the env (true of ``marl_env``): every agent in ``env.agents`` acts in every step
until the episode ends for all of them at once, ``env.agents`` changes only at ``reset``, each
agent's observation is a 1-D array of the same length and its action space is
``Tuple(Discrete, Discrete, Box(shape=(1,)))``.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tree
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils import force_list
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    RLMODULE_INFERENCE_TIMER,
    WEIGHTS_SEQ_NO,
)

from mahppo.algorithms.experiment import SAMPLERS
from mahppo.algorithms.rllib.modules import HybridActorModule

logger = logging.getLogger(__name__)

_EPISODE_CALLBACKS = ("on_episode_created", "on_episode_start", "on_episode_step", "on_episode_end")
_NOT_EXTRA = (Columns.ACTIONS, Columns.ACTIONS_FOR_ENV)


def use_sampler(config: Any, sampler: str) -> Any:
    """Select the sampler on an RLlib config: ``"vector"`` (``VectorEnvRunner``) or ``"rllib"``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler = {sampler!r} must be one of {SAMPLERS}")
    config.env_runners(env_runner_cls=VectorEnvRunner if sampler == "vector" else None)
    return config


def fast_path_blockers(config: Any) -> list[str]:
    """Config settings the vectorised loop does not reproduce (empty: it can sample)."""
    why = []
    if not config.enable_env_runner_and_connector_v2:
        why.append("the old API stack")
    if config._env_to_module_connector is not None or not config.add_default_connectors_to_env_to_module_pipeline:
        why.append("a custom env-to-module connector")
    if config._module_to_env_connector is not None or not config.add_default_connectors_to_module_to_env_pipeline:
        why.append("a custom module-to-env connector")
    if config.normalize_actions or config.clip_actions:
        why.append("normalize_actions / clip_actions (the env clips power itself)")
    for name in _EPISODE_CALLBACKS:
        if getattr(config, f"callbacks_{name}", None):
            why.append(f"a {name} callback")
    for cls in force_list(config.callbacks_class):
        for name in _EPISODE_CALLBACKS:
            if getattr(cls, name, None) is not getattr(RLlibCallback, name):
                why.append(f"{cls.__name__}.{name}")
    return why


@dataclass
class _Copy:
    """One env copy: its agents, their modules and the episode chunk being collected."""

    env: Any  # the raw PettingZoo env (has step_arrays)
    base: int  # first row of this copy in the rollout arrays
    obs_spaces: dict[str, gym.Space]
    act_spaces: dict[str, gym.Space]
    agents: list[str] = field(default_factory=list)  # env.agents order (the arrays' order)
    modules: list[str] = field(default_factory=list)  # module id per agent
    act_order: list[int] = field(default_factory=list)  # positions in the order RLlib batches them
    pending_reset: bool = True
    episode_id: str = ""
    agent_episode_ids: dict[str, str] = field(default_factory=dict)
    env_t: int = 0  # env steps of the episode so far
    chunk_t0: int = 0  # env_t where the current chunk starts
    chunk_k0: int = 0  # rollout step of the chunk's first observation
    infos: list[dict] = field(default_factory=list)  # per observation of the chunk, keyed by agent
    obs: np.ndarray | None = None  # current observations, [n, obs_dim]
    lookback: dict[str, Any] | None = None  # the last steps of the previous chunk (RLlib's lookback)
    start_time: float = 0.0
    last_step_time: float | None = None

    @property
    def n(self) -> int:
        return len(self.agents)


class _Rollout:
    """Preallocated per-step arrays over all rows (copy x agent slot), grown on demand."""

    def __init__(self, steps: int, rows: int, obs_dim: int):
        self.rows = rows
        self.obs = np.zeros((steps + 1, rows, obs_dim), np.float32)
        self.rew = np.zeros((steps, rows), np.float64)
        self.cols: dict[Any, np.ndarray] = {}  # action leaves (ints) and extra model outputs (names)

    @property
    def steps(self) -> int:
        return self.rew.shape[0]

    def ensure(self, k: int) -> None:
        if k < self.steps:
            return
        grow = max(self.steps, 16)

        def more(a: np.ndarray, extra: int) -> np.ndarray:
            return np.concatenate([a, np.zeros((extra, *a.shape[1:]), a.dtype)])

        self.obs = more(self.obs, grow)
        self.rew = more(self.rew, grow)
        self.cols = {key: more(a, grow) for key, a in self.cols.items()}

    def write(self, key: Any, k: int, rows: np.ndarray, values: np.ndarray) -> None:
        a = self.cols.get(key)
        width = values.shape[1:]
        if a is None or a.shape[2:-1] != width[:-1] or (width and a.shape[-1] < width[-1]):
            a = self._widen(key, values)
        if width and a.shape[-1] != width[-1]:
            a[k, rows, ..., :width[-1]] = values
        else:
            a[k, rows] = values

    def _widen(self, key: Any, values: np.ndarray) -> np.ndarray:
        old = self.cols.get(key)
        shape = list(values.shape[1:])
        if old is not None:
            if old.shape[2:-1] != tuple(shape[:-1]) or old.dtype != values.dtype:
                raise RuntimeError(f"vector sampler: column {key!r} changes shape or dtype between modules")
            shape[-1] = max(shape[-1], old.shape[-1])
        a = np.zeros((self.steps, self.rows, *shape), values.dtype)
        if old is not None:
            a[..., :old.shape[-1]] = old
        self.cols[key] = a
        return a


class VectorEnvRunner(MultiAgentEnvRunner):
    """RLlib's multi-agent env runner with a vectorised sampling loop (see the module docstring)."""

    def __init__(self, config: Any, **kwargs: Any):
        super().__init__(config=config, **kwargs)
        self._copies: list[_Copy] = []
        self._blockers = self._runner_blockers()
        if self.env is not None:
            self._setup_copies()
        self._owner: str | None = None  # whose episodes the env copies are in: "vector" or "rllib"
        self._warned = False
        self._width: dict[tuple[str, str], int] = {}  # (column, module) -> last-dim width

    def _runner_blockers(self) -> list[str]:
        why = fast_path_blockers(self.config)
        if self.module is not None:
            why += [f"stateful module {mid}" for mid in self.module.keys() if self.module[mid].is_stateful()]
        return why

    def _setup_copies(self) -> None:
        self._copies = []
        slots = 0
        for i, sub in enumerate(self.env.envs):
            wrapper = sub.unwrapped
            env = getattr(wrapper, "par_env", wrapper)
            if not hasattr(env, "step_arrays"):
                self._blockers.append(f"env {type(env).__name__} has no step_arrays")
                return
            possible = list(getattr(env, "possible_agents", None) or wrapper.possible_agents)
            obs_spaces = {a: wrapper.get_observation_space(a) for a in possible}
            act_spaces = {a: wrapper.get_action_space(a) for a in possible}
            for a in possible:
                why = _unsupported_spaces(a, obs_spaces[a], act_spaces[a])
                if why:
                    self._blockers.append(why)
                    return
            self._copies.append(_Copy(env=env, base=slots, obs_spaces=obs_spaces, act_spaces=act_spaces))
            slots += len(possible)
            if i == 0:
                self._obs_dim = int(obs_spaces[possible[0]].shape[0])
        dims = {int(s.shape[0]) for c in self._copies for s in c.obs_spaces.values()}
        if len(dims) > 1:
            self._blockers.append(f"observations of different lengths {sorted(dims)}")
        self._slots = slots

    def make_env(self) -> None:
        super().make_env()
        if getattr(self, "_copies", None) is not None and self.env is not None:
            self._blockers = self._runner_blockers()
            self._setup_copies()
            self._owner = None

    # --- sampling --------------------------------------------------------------------------------
    def _sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None, explore: bool,
                random_actions: bool = False, force_reset: bool = False) -> list[MultiAgentEpisode]:
        why = list(self._blockers)
        if num_timesteps is None:
            why.append("sampling by episodes")
        if not explore:
            why.append("explore=False")
        if random_actions:
            why.append("random actions")
        if self.module is None:
            why.append("no RL module")
        if why:
            if not self._warned:
                logger.warning("VectorEnvRunner: RLlib's own sampling loop is used (%s)", ", ".join(why))
                self._warned = True
            handover = self._owner == "vector"  # RLlib's loop cannot continue our episodes
            self._owner = "rllib"
            return super()._sample(num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
                                   random_actions=random_actions, force_reset=force_reset or handover)
        reset_all = force_reset or self._owner != "vector"
        self._owner = "vector"
        return self._sample_vector(num_timesteps, reset_all)

    def _sample_vector(self, num_timesteps: int, reset_all: bool) -> list[MultiAgentEpisode]:
        copies = self._copies
        for mid in self.module.keys():
            if isinstance(self.module[mid], TorchRLModule) and self.module[mid].training:
                self.module[mid].eval()  # sampling only: forward_exploration runs in eval mode too
        seed_base = self._seed if reset_all and self._needs_initial_reset else None
        if reset_all:  # as RLlib: the first reset is seeded (seed + copy index), later ones are not
            for c in copies:
                c.pending_reset = True
                c.lookback = None
            self._ongoing_episodes_for_metrics.clear()
            self._needs_initial_reset = False
        by_agents = self.config.count_steps_by != "env_steps"
        per_step = sum(c.n or len(c.obs_spaces) for c in copies) if by_agents else len(copies)
        roll = _Rollout(num_timesteps // max(1, per_step) + 2, self._slots, self._obs_dim)
        for c in copies:  # ongoing chunks continue at step 0 of this rollout
            c.chunk_k0 = 0
            if not c.pending_reset:
                roll.obs[0, c.base:c.base + c.n] = c.obs
        done: list[MultiAgentEpisode] = []
        layout: tuple[tuple, list] | None = None
        env_ts = agent_ts = 0
        k = 0
        runners = self.config.num_env_runners or 1
        seq_no = np.int64(self._weights_seq_no)
        while (agent_ts if by_agents else env_ts) < num_timesteps:
            roll.ensure(k)
            acting = [c for c in copies if not c.pending_reset]
            if acting:
                key = tuple((id(c), c.episode_id) for c in acting)
                if layout is None or layout[0] != key:
                    layout = (key, _act_layout(acting))
                t = (self.num_env_steps_sampled_lifetime // runners + env_ts) * runners
                with self.metrics.log_time(RLMODULE_INFERENCE_TIMER):
                    self._act(roll, k, layout[1], t, seq_no)
            now = time.perf_counter()
            for i, c in enumerate(copies):
                if c.pending_reset:  # RLlib's vector env resets a finished copy at the next step
                    self._reset_copy(c, roll, k + 1, None if seed_base is None else seed_base + i, now)
                    continue
                obs, rewards, terms, truncs, infos = self._step_copy(c, roll, k)
                rows = slice(c.base, c.base + c.n)
                roll.obs[k + 1, rows] = obs
                roll.rew[k, rows] = [rewards[a] for a in c.agents]
                c.infos.append(infos)
                c.env_t += 1
                c.last_step_time = now
                env_ts += 1
                agent_ts += c.n
                if all(terms[a] for a in c.agents) or all(truncs[a] for a in c.agents):
                    done.append(self._build(c, roll, c.chunk_k0, k + 1, terms, truncs))
                    c.pending_reset = True
                    c.lookback = None
                else:
                    c.obs = obs
            seed_base = None
            k += 1
        ongoing = []
        for c in copies:
            if c.pending_reset:
                continue
            if c.chunk_k0 == k:  # reset in the last step: nothing to return yet
                c.chunk_k0 = 0
                continue
            eps = self._build(c, roll, c.chunk_k0, k, None, None)
            self._cut(c, roll, k)
            eps.validate()
            self._ongoing_episodes_for_metrics[eps.id_].append(eps)
            ongoing.append(eps)
        self._done_episodes_for_metrics.extend(done)
        self._log_counts(env_ts, done + ongoing, len(done))
        return done + ongoing

    def _act(self, roll: _Rollout, k: int, layout: list[tuple[str, np.ndarray]], t: int,
             seq_no: np.int64) -> None:
        """One forward per module over its rows, sampling as RLlib's ``GetActions`` does."""
        obs_k = roll.obs[k]
        for mid, rows in layout:
            module = self.module[mid]
            batch = {Columns.OBS: torch.from_numpy(obs_k[rows]).to(self._device)}
            if isinstance(module, TorchRLModule) and not module.training:
                # what forward_exploration does, minus its eval()/train() walk over the module tree
                # per call (the modules were put into eval mode once for this rollout)
                out = dict(module._forward_exploration(batch, t=t))
            else:
                out = dict(module.forward_exploration(batch, t=t))
            if Columns.ACTIONS not in out:
                inputs = out[Columns.ACTION_DIST_INPUTS]
                if _is_hybrid(module):
                    out[Columns.ACTIONS], logp = hybrid_sample(inputs, module.n_points, module.n_channels)
                else:
                    dist = module.get_exploration_action_dist_cls().from_logits(inputs)
                    out[Columns.ACTIONS] = dist.sample()
                    logp = dist.logp(out[Columns.ACTIONS])
                out.setdefault(Columns.ACTION_LOGP, logp)
            for leaf, value in enumerate(tree.flatten(out[Columns.ACTIONS])):
                roll.write(leaf, k, rows, _np(value))
            for col, value in out.items():
                if col not in _NOT_EXTRA:
                    value = _np(value)
                    roll.write(col, k, rows, value)
                    if value.ndim > 1:
                        self._width[(col, mid)] = value.shape[-1]
            roll.write(WEIGHTS_SEQ_NO, k, rows, np.full(len(rows), seq_no))

    def _step_copy(self, c: _Copy, roll: _Rollout, k: int):
        rows = slice(c.base, c.base + c.n)
        points, channels, powers = (roll.cols[i][k, rows] for i in range(3))
        obs, rewards, terms, truncs, infos = c.env.step_arrays(points, channels, powers.reshape(-1))
        matrix = getattr(c.env, "observation_matrix", None)
        obs_m = matrix() if matrix is not None else np.stack([obs[a] for a in c.agents])
        return obs_m, rewards, terms, truncs, infos

    def _reset_copy(self, c: _Copy, roll: _Rollout, k: int, seed: int | None, now: float) -> None:
        obs, infos = c.env.reset(seed=seed)
        agents = list(c.env.agents)
        if list(obs) != agents:
            raise RuntimeError(f"vector sampler: reset observations {list(obs)} != env.agents {agents}")
        if len(agents) > len(c.obs_spaces):
            raise RuntimeError(f"vector sampler: {len(agents)} agents > {len(c.obs_spaces)} possible agents")
        episode = MultiAgentEpisode(agent_to_module_mapping_fn=self.config.policy_mapping_fn)
        c.agents = agents
        c.modules = [episode.module_for(a) for a in agents]
        unknown = sorted(set(c.modules) - set(self.module.keys()))
        if unknown:
            raise RuntimeError(f"vector sampler: agents map to modules {unknown} that the runner does not hold")
        positions = {a: j for j, a in enumerate(agents)}
        c.act_order = [positions[a] for a in set(obs)]  # RLlib batches an episode's agents in set order
        c.episode_id = episode.id_
        c.agent_episode_ids = {a: uuid.uuid4().hex for a in agents}
        matrix = getattr(c.env, "observation_matrix", None)
        c.obs = matrix() if matrix is not None else np.stack([obs[a] for a in agents])
        roll.obs[k, c.base:c.base + c.n] = c.obs
        c.infos = [infos or {}]
        c.env_t = c.chunk_t0 = 0
        c.chunk_k0 = k
        c.lookback = None
        c.pending_reset = False
        c.start_time = now
        c.last_step_time = None

    def _cut(self, c: _Copy, roll: _Rollout, k: int) -> None:
        """Start the next chunk of an ongoing episode, keeping RLlib's lookback of its last steps."""
        steps = k - c.chunk_k0
        keep = min(self.config.episode_lookback_horizon, steps + (len(c.lookback["rew"]) if c.lookback else 0))
        if keep <= 0:
            lookback = None
        else:
            rows = slice(c.base, c.base + c.n)
            new = {"obs": roll.obs[c.chunk_k0:k, rows], "rew": roll.rew[c.chunk_k0:k, rows],
                   "cols": {key: a[c.chunk_k0:k, rows] for key, a in roll.cols.items()},
                   "infos": c.infos[:-1]}
            lookback = _tail(_join(c.lookback, new), keep)
        c.lookback = lookback
        c.infos = c.infos[-1:]
        c.chunk_t0 = c.env_t
        c.start_time = c.last_step_time or c.start_time

    def _build(self, c: _Copy, roll: _Rollout, k0: int, k1: int, terms: dict | None,
               truncs: dict | None) -> MultiAgentEpisode:
        """The chunk ``k0..k1`` of copy ``c`` as a numpy'd RLlib ``MultiAgentEpisode``."""
        rows = slice(c.base, c.base + c.n)
        data = {"obs": roll.obs[k0:k1 + 1, rows], "rew": roll.rew[k0:k1, rows],
                "cols": {key: a[k0:k1, rows] for key, a in roll.cols.items()}, "infos": c.infos}
        lb = 0
        if c.lookback is not None:
            lb = len(c.lookback["rew"])
            data = _join(c.lookback, data)
        # RLlib's MultiAgentEpisode.add_env_step marks an episode whose agents are all done as
        # terminated, truncated ones included, and passes that flag on to every agent: kept as is,
        # so that the learner sees the batch RLlib's own loop would give it.
        truncated = bool(truncs) and all(truncs[a] for a in c.agents)
        terminated = bool(terms) and all(terms[a] or truncs[a] for a in c.agents)
        episode = MultiAgentEpisode(
            id_=c.episode_id, observation_space=c.obs_spaces, action_space=c.act_spaces,
            agent_to_module_mapping_fn=self.config.policy_mapping_fn,
            agent_module_ids=dict(zip(c.agents, c.modules, strict=True)),
            terminateds=terminated, truncateds=truncated, env_t_started=c.chunk_t0)
        steps = k1 - k0
        for j, (aid, mid) in enumerate(zip(c.agents, c.modules, strict=True)):
            actions = tuple(np.ascontiguousarray(data["cols"][i][:, j]) for i in range(3))
            extra = {}
            for key, a in data["cols"].items():
                if isinstance(key, int):
                    continue
                col = a[:, j]
                width = self._width.get((key, mid))
                extra[key] = np.ascontiguousarray(col[..., :width] if width is not None else col)
            sa = SingleAgentEpisode(
                id_=c.agent_episode_ids[aid], agent_id=aid, module_id=mid, multi_agent_episode_id=c.episode_id,
                observations=np.ascontiguousarray(data["obs"][:, j]), observation_space=c.obs_spaces[aid],
                infos=[inf.get(aid, {}) for inf in data["infos"]],
                actions=actions, action_space=c.act_spaces[aid],
                rewards=np.ascontiguousarray(data["rew"][:, j]),
                extra_model_outputs=extra,
                terminated=bool(terms and terms[aid]) or terminated,
                truncated=bool(truncs and truncs[aid]) or truncated,
                t_started=c.chunk_t0, len_lookback_buffer=lb)
            sa.actions.lookback = lb  # a tuple of arrays is not its own length
            episode.agent_episodes[aid] = sa
            episode.agent_t_started[aid] = c.chunk_t0
            episode.env_t_to_agent_t[aid] = InfiniteLookbackBuffer(
                list(range(c.chunk_t0 - lb, c.chunk_t0 + steps + 1)), lookback=lb)
        episode._len_lookback_buffers = lb
        episode.env_t = c.chunk_t0 + steps
        episode._start_time = c.start_time
        episode._last_step_time = c.last_step_time
        return episode

    def _log_counts(self, env_steps: int, episodes: list[MultiAgentEpisode], num_done: int) -> None:
        """RLlib's per-step sample counters, logged once per rollout."""
        m = self.metrics
        if env_steps:
            m.log_value(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
            m.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
            self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=env_steps)
        if num_done:
            m.log_value(NUM_EPISODES, num_done, reduce="sum")
            m.log_value(NUM_EPISODES_LIFETIME, num_done, reduce="lifetime_sum")
        agents: dict[str, int] = {}
        modules: dict[str, int] = {}
        for eps in episodes:
            for aid, sa in eps.agent_episodes.items():
                agents[aid] = agents.get(aid, 0) + len(sa)
                modules[sa.module_id] = modules.get(sa.module_id, 0) + len(sa)
        for aid, n in agents.items():
            m.log_value((NUM_AGENT_STEPS_SAMPLED, str(aid)), n, reduce="sum")
            m.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, str(aid)), n, reduce="lifetime_sum")
        for mid, n in modules.items():
            m.log_value((NUM_MODULE_STEPS_SAMPLED, mid), n, reduce="sum")
            m.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, mid), n, reduce="lifetime_sum")


def _is_hybrid(module: Any) -> bool:
    return isinstance(module, HybridActorModule) and module.get_exploration_action_dist_cls() is module.action_dist_cls


def hybrid_sample(inputs: torch.Tensor, n_points: int, n_channels: int):
    """``(actions, logp)`` of a hybrid actor's exploration distribution, without building it.

    The same torch operations, in the same order, as RLlib's ``TorchMultiDistribution`` over
    ``[TorchCategorical, TorchCategorical, TorchDiagGaussian]`` (``from_logits``, ``sample``,
    ``logp``), so the same random draws and bit-identical results; about 5x cheaper per call.
    """
    logits_b, logits_c, gauss = torch.split(inputs, [n_points, n_channels, 2], dim=-1)
    logits_b = logits_b - logits_b.logsumexp(dim=-1, keepdim=True)  # torch Categorical(logits=...)
    logits_c = logits_c - logits_c.logsumexp(dim=-1, keepdim=True)
    loc, log_std = gauss.chunk(2, dim=-1)
    scale = log_std.exp()
    rows = inputs.shape[:-1]
    b = torch.multinomial(torch.softmax(logits_b, dim=-1).reshape(-1, n_points), 1, True).T.reshape(rows)
    c = torch.multinomial(torch.softmax(logits_c, dim=-1).reshape(-1, n_channels), 1, True).T.reshape(rows)
    p = torch.normal(loc, scale)
    logp_b = logits_b.gather(-1, b.long().unsqueeze(-1)).squeeze(-1)
    logp_c = logits_c.gather(-1, c.long().unsqueeze(-1)).squeeze(-1)
    logp_p = (-((p - loc) ** 2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))).sum(-1)
    return (b, c, p), 0 + logp_b + logp_c + logp_p


def _act_layout(acting: list[_Copy]) -> list[tuple[str, np.ndarray]]:
    """Rows of each module, modules and rows in the order RLlib's env-to-module connectors give."""
    rows: dict[str, list[int]] = {}
    for c in acting:
        for j in c.act_order:
            rows.setdefault(c.modules[j], []).append(c.base + j)
    return [(mid, np.asarray(r, dtype=np.int64)) for mid, r in rows.items()]


def _np(value: Any) -> np.ndarray:
    """What RLlib's ``TensorToNumpy`` connector makes of a tensor: float64 -> float32, int64 -> int32."""
    a = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if a.dtype.kind == "f" and a.dtype != np.float32:
        return a.astype(np.float32)
    if a.dtype.kind == "i" and a.dtype != np.int32:
        return a.astype(np.int32)
    return a


def _join(a: dict | None, b: dict) -> dict:
    """Steps of ``a`` followed by those of ``b`` (a lookback and a chunk)."""
    if a is None:
        return b
    return {"obs": np.concatenate([a["obs"], b["obs"]]), "rew": np.concatenate([a["rew"], b["rew"]]),
            "cols": {key: _cat(a["cols"][key], v) for key, v in b["cols"].items()},
            "infos": list(a["infos"]) + list(b["infos"])}


def _cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Concatenate along steps, zero-padding the last dim of the narrower one (padded columns)."""
    if a.ndim > 2 and a.shape[-1] != b.shape[-1]:
        width = max(a.shape[-1], b.shape[-1])
        a, b = (np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])]) for x in (a, b))
    return np.concatenate([a, b])


def _tail(d: dict, keep: int) -> dict:
    return {"obs": d["obs"][-keep:].copy(), "rew": d["rew"][-keep:].copy(),
            "cols": {key: v[-keep:].copy() for key, v in d["cols"].items()}, "infos": list(d["infos"][-keep:])}


def _unsupported_spaces(agent: str, obs_space: gym.Space, act_space: gym.Space) -> str | None:
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        return f"{agent}: observation space {obs_space} is not a 1-D Box"
    ok = (isinstance(act_space, gym.spaces.Tuple) and len(act_space.spaces) == 3
          and isinstance(act_space.spaces[0], gym.spaces.Discrete)
          and isinstance(act_space.spaces[1], gym.spaces.Discrete)
          and isinstance(act_space.spaces[2], gym.spaces.Box) and act_space.spaces[2].shape == (1,))
    return None if ok else f"{agent}: action space {act_space} is not Tuple(Discrete, Discrete, Box(1,))"
