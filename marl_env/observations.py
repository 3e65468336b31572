"""Observations for any N: a UE's own features and the other UEs as a padded set.

The paper's actors observe the global state ``s_t = {k, l, n, d}`` of all N UEs (Sec. 4.3), so an
actor is tied to N and to the UE order. The agent-centric observation here serves one shared actor
for any cell (up to ``max_ues`` UEs, any order, any mix of DNNs):

Per UE a feature row of ``F = 4 + 1 + D + 1 + 1`` numbers:

- the four state features of Sec. 4.3, ``[k / K_n, l / t_local, n / f_raw, (d - d_min) / (d_max - d_min)]``;
- a rank token, spread evenly over (0, 1) (``(rank + 0.5) / N``): the UE's **load rank** (below). Its
  ties are broken by the rank by distance to the edge server (nearest first), and equal distances by a
  tie-break key, never by the UEs' order: the env draws the keys at random per episode, the server uses
  a stable hash of each ``ue_id`` (``tokens_for``: an id keeps its place among equals). In a cell of
  identical UEs (the test scenario: every UE 50 m away with 200 tasks and the same DNN) a function that
  treats UEs alike must give them the same decision, but the best decisions differ per UE; the token
  tells them apart;
- the descriptor of its DNN (``D = 4 * MAX_POINTS + 1``), from its profile: per partition point
  ``b < MAX_POINTS`` the bits sent over the raw input's (``f_b / f_0``, Eq. 6), the front latency in
  frames (``(t_f + t_c) / T0``), the front energy over ``p_max T0`` and a 1 where ``b`` is one of its
  ``B_n + 2`` points (0 = padding); then the raw input's airtime at 1 bit/s/Hz in frames
  (``f_0 / (omega T0)``);
- its local work left: tasks left x its full local latency, in units of ``WORK_SCALE_S`` (10 s);
- its current fading power gain ``h`` (the channel gain of Eq. 5 is ``d^-l h``; 1 without fading,
  ``EnvConfig.dynamics``): this frame's, observed; the next frame's is not.

The **load rank** is recomputed every frame: UEs ranked by local work left, most first, ties as above. It lets one
network learn a rotation: the few UEs with the most work left offload, one per channel, while the
others run locally, the rule that ``marl_env.policies.RotatePolicy`` (``rotate``) follows and that beats
every fixed configuration at N >= 3. The work feature tells how close a UE is to finishing, so the last
frames can be planned (Eq. 12 charges a last frame that completes few tasks heavily).

Agent ``i`` observes ``[own row (F) | the other UEs' rows ((M-1) x F, zero-padded) | mask (M-1)]``
with ``M = max_ues``: ``M * F + M - 1`` numbers. The other UEs come in index order; a policy that pools
over them (``algorithms.modules.SharedActorModule``) does not depend on that order.
"""

from __future__ import annotations

import numpy as np

from mahppo.marl_env.profiles import DNNProfile

MAX_POINTS = 8  # B_n + 2 <= 8: up to six partition points inside a model
STATE_FEATURES = 4
TOKEN = STATE_FEATURES  # index of the rank token in a feature row
DESCRIPTOR_SIZE = 4 * MAX_POINTS + 1
WORK = STATE_FEATURES + 1 + DESCRIPTOR_SIZE  # index of the local work left in a feature row
FADING = WORK + 1  # index of the current fading power gain h
FEATURES = FADING + 1  # the row's size: the one number the modules read
WORK_SCALE_S = 10.0  # the work feature's unit (seconds of local inference)
# offset of the valid-point mask inside a feature row
POINT_MASK = slice(STATE_FEATURES + 1 + 3 * MAX_POINTS, STATE_FEATURES + 1 + 4 * MAX_POINTS)


def rank_tokens(ranks: np.ndarray) -> np.ndarray:
    """Ranks ``0..N-1`` -> tokens ``(rank + 0.5) / N``, evenly spread over (0, 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return (ranks + 0.5) / max(len(ranks), 1)


def _tokens_by(key: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Rank tokens by ``key`` (smallest first), equal keys ranked by ``tiebreak`` (smallest first)."""
    order = np.lexsort((np.asarray(tiebreak), np.asarray(key, dtype=np.float64)))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return rank_tokens(ranks)


def distance_tokens(distance_m: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Rank tokens by distance (nearest first), equal distances ranked by ``tiebreak`` (distinct keys)."""
    return _tokens_by(distance_m, tiebreak)


def load_tokens(work_s: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Rank tokens by local work left (most first), equal work ranked by ``tiebreak`` (smallest first)."""
    return _tokens_by(-np.asarray(work_s, dtype=np.float64), tiebreak)


def tokens_for(ue_ids: list[str], distance_m: np.ndarray | None = None) -> np.ndarray:
    """The tokens of a cell from its UEs' ids (and distances): rank by distance, ties by a stable hash
    of each id."""
    import hashlib

    keys = np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=7).digest(), "big") for u in ue_ids],
                    dtype=np.int64)
    return distance_tokens(np.zeros(len(ue_ids)) if distance_m is None else distance_m, keys)


def dnn_descriptor(profile: DNNProfile, frame_s: float, bandwidth_hz: float, p_max_w: float) -> np.ndarray:
    """The ``D`` numbers that tell a shared network which DNN a UE runs (see the module doc)."""
    k = profile.num_actions
    if k > MAX_POINTS:
        raise ValueError(f"dnn {profile.name!r} has {k} partition choices; a shared policy takes at most "
                         f"{MAX_POINTS} (B_n <= {MAX_POINTS - 2})")
    out = np.zeros(DESCRIPTOR_SIZE, dtype=np.float32)
    raw = float(profile.bits[0])
    out[0:k] = profile.bits / raw
    out[MAX_POINTS:MAX_POINTS + k] = profile.front_latency_s / frame_s
    out[2 * MAX_POINTS:2 * MAX_POINTS + k] = profile.front_energy_j / (p_max_w * frame_s)
    out[3 * MAX_POINTS:3 * MAX_POINTS + k] = 1.0
    out[4 * MAX_POINTS] = raw / (bandwidth_hz * frame_s)
    return out


def obs_size(max_ues: int) -> int:
    return max_ues * FEATURES + max_ues - 1


def agent_observations(state: np.ndarray, tokens: np.ndarray, descriptors: np.ndarray, max_ues: int,
                       work_s: np.ndarray, fading: np.ndarray | None = None) -> np.ndarray:
    """Every UE's agent-centric observation, ``[n, obs_size(max_ues)]`` (float32).

    ``state``: the global state ``[4n]`` (or ``[n, 4]``); ``tokens``: ``[n]`` distance rank tokens (the
    tie-break of the load rank); ``descriptors``: ``[n, D]`` (``dnn_descriptor``); ``work_s``: ``[n]``
    local work left in seconds (tasks left x full local latency); ``fading``: ``[n]`` current fading power
    gains (default 1: no fading).
    """
    work = np.asarray(work_s, dtype=np.float64).reshape(-1)
    fade = np.ones(len(work), dtype=np.float32) if fading is None else np.asarray(fading, dtype=np.float32)
    feats = np.concatenate([np.asarray(state, dtype=np.float32).reshape(-1, STATE_FEATURES),
                            load_tokens(work, tokens).astype(np.float32).reshape(-1, 1),
                            np.asarray(descriptors, dtype=np.float32),
                            (work / WORK_SCALE_S).astype(np.float32).reshape(-1, 1),
                            fade.reshape(-1, 1)], axis=1)
    n = feats.shape[0]
    if n > max_ues:
        raise ValueError(f"num_ues = {n} exceeds max_ues = {max_ues} of the observation")
    out = np.zeros((n, obs_size(max_ues)), dtype=np.float32)
    out[:, :FEATURES] = feats
    if n > 1:
        others = _others_index(n)  # [n, n-1]
        out[:, FEATURES:FEATURES + (n - 1) * FEATURES] = feats[others].reshape(n, -1)
        mask0 = FEATURES + (max_ues - 1) * FEATURES
        out[:, mask0:mask0 + n - 1] = 1.0
    return out


_OTHERS: dict[int, np.ndarray] = {}


def _others_index(n: int) -> np.ndarray:
    idx = _OTHERS.get(n)
    if idx is None:
        full = np.arange(n)
        idx = np.stack([np.delete(full, i) for i in range(n)])
        _OTHERS[n] = idx
    return idx


def split_observation(obs, max_ues: int):
    """``[..., obs_size]`` -> own ``[..., F]``, others ``[..., M-1, F]``, mask ``[..., M-1]`` (numpy or torch)."""
    m1 = max_ues - 1
    own = obs[..., :FEATURES]
    others = obs[..., FEATURES:FEATURES + m1 * FEATURES].reshape(*obs.shape[:-1], m1, FEATURES)
    mask = obs[..., FEATURES + m1 * FEATURES:]
    return own, others, mask
