"""Observations for any N: a UE's own features and the key of its frame (the other UEs are its frame's rows).

The paper's actors observe the global state ``s_t = {k, l, n, d}`` of all N UEs (Sec. 4.3), so an
actor is tied to N and to the UE order. The agent-centric observation here serves one shared actor
for any cell (any N, any order, any mix of DNNs):

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

Agent ``i`` observes ``[own row (F) | frame key (KEY_SIZE)]``: ``F + 2`` numbers for any N. The other
UEs are not copied into every agent's row (that made each frame cost ``N^2`` numbers and a pairwise
encoder ``N^2`` network passes): the rows of one frame carry the same **frame key** (two integers below
2^24 as floats: an episode's random key, drawn at reset from a stream of its own, seeded by reset's seed,
with the frame number added to its second half, ``frame_key``; ``(0, 0)`` for a single cell built by a
server), so a set model groups a batch's rows by frame and pools each frame once
(``algorithms.rllib.modules``: the summary of the others is the frame's sum minus the UE's own term).
A batch handed to such a model holds every row of each of its frames (``frame_ids``). The network
never reads the key.
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


KEY_SIZE = 2  # the frame key's numbers after the feature row
KEY = FEATURES  # offset of the frame key in an observation


def obs_size() -> int:
    """Numbers per agent-centric observation: the own feature row and the frame key (any N)."""
    return FEATURES + KEY_SIZE


def agent_observations(state: np.ndarray, tokens: np.ndarray, descriptors: np.ndarray, work_s: np.ndarray,
                       fading: np.ndarray | None = None,
                       key: tuple[float, float] | np.ndarray = (0.0, 0.0)) -> np.ndarray:
    """Every UE's agent-centric observation, ``[n, obs_size()]`` (float32): its feature row and the frame key.

    ``state``: the global state ``[4n]`` (or ``[n, 4]``); ``tokens``: ``[n]`` distance rank tokens (the
    tie-break of the load rank); ``descriptors``: ``[n, D]`` (``dnn_descriptor``); ``work_s``: ``[n]``
    local work left in seconds (tasks left x full local latency); ``fading``: ``[n]`` current fading power
    gains (default 1: no fading); ``key``: the frame key (see the module doc).
    """
    work = np.asarray(work_s, dtype=np.float64).reshape(-1)
    n = work.shape[0]
    out = np.empty((n, obs_size()), dtype=np.float32)
    out[:, :STATE_FEATURES] = np.asarray(state, dtype=np.float32).reshape(-1, STATE_FEATURES)
    out[:, TOKEN] = load_tokens(work, tokens)
    out[:, TOKEN + 1:WORK] = np.asarray(descriptors, dtype=np.float32)
    out[:, WORK] = work / WORK_SCALE_S
    out[:, FADING] = 1.0 if fading is None else np.asarray(fading, dtype=np.float32)
    out[:, KEY:] = np.asarray(key, dtype=np.float32)
    return out


def new_frame_key(rng: np.random.Generator) -> np.ndarray:
    """An episode's key: two random integers in ``[0, 2^24)`` (exact in float32)."""
    return rng.integers(0, 1 << 24, size=KEY_SIZE).astype(np.float32)


def frame_key(episode_key: np.ndarray, frame: int) -> np.ndarray:
    """The key of frame ``frame`` of an episode: ``(a, (b + frame) mod 2^24)`` for the episode's ``(a, b)``:
    the same for every call within a frame; two frames of a batch share it only if their episodes drew the
    same ``a`` (chance 2^-24 per pair) and their frame ranges overlap from random offsets ``b``."""
    return np.array([episode_key[0], (int(episode_key[1]) + int(frame)) % (1 << 24)], dtype=np.float32)


def stamp_frames(blocks: list[np.ndarray]) -> np.ndarray:
    """Concatenate several cells' observations into one batch, the rows of block ``j`` keyed ``(j, 0)``
    (distinct frames for a set model, whatever keys they had)."""
    out = np.concatenate(blocks) if blocks else np.zeros((0, obs_size()), np.float32)
    out[:, KEY + 1] = 0.0
    out[:, KEY] = np.repeat(np.arange(len(blocks), dtype=np.float32), [len(b) for b in blocks])
    return out


def frame_ids(obs):
    """One integer per row naming its frame (numpy ``int64`` or torch ``long``): rows with the same key."""
    hi, lo = obs[..., KEY], obs[..., KEY + 1]
    if isinstance(obs, np.ndarray):
        return hi.astype(np.int64) * (1 << 24) + lo.astype(np.int64)
    return hi.long() * (1 << 24) + lo.long()


def split_observation(obs):
    """``[..., obs_size]`` -> own feature rows ``[..., F]`` and frame ids (numpy or torch)."""
    return obs[..., :FEATURES], frame_ids(obs)
