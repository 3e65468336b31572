"""Less Python per minibatch update in RLlib's torch learner (same updates, fewer kernels).

Profiling MAHPPO's 40 minibatch updates per iteration (N = 3, 256 samples each) showed that a
third of each update was bookkeeping around the maths rather than the maths:

- Adam ran as a Python loop over every parameter tensor (torch's ``foreach``/``fused`` paths are
  only defaults on GPUs): here one fused Adam kernel per module, the same update rule;
- RLlib checks every gradient tensor for NaN/inf twice per update (two small kernels per tensor):
  here one check over all of them, and RLlib's own handling only when it fails;
- RLlib slices each minibatch with per-column Python slicing and concatenation (``SampleBatch``,
  ``concat_samples``): here each module's rows are gathered with one index per column from the
  same kind of cyclic, per-epoch reshuffled stream of rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import tree
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from mahppo.algorithms.rllib.modules import LOSS_ROWS


class LeanTorchLearner(TorchLearner):
    """Mixin for a ``TorchLearner`` subclass (put it first in the bases).

    ``minibatch_per_env_step``: a minibatch holds each module's rows of ``minibatch_size`` env steps
    (a module with N rows per env step, e.g. one actor shared by N UEs, takes N times as many rows per
    minibatch, and every module makes the same number of steps); False: ``minibatch_size`` rows of
    the module with the most rows and the others' rows in proportion, so every module passes over its
    rows ``num_epochs`` times (RLlib's rule when every module has as many rows, as the paper's per-UE
    actors and global critic have; the set critic keeps one row per frame: ``connectors.py``)."""

    minibatch_per_env_step: bool = False
    frame_ues: int | None = None

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        module = self._module[module_id]
        params = self.get_parameters(module)
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, **_adam_kwargs(params)),
                                params=params, lr_or_lr_schedule=config.lr)

    def apply_gradients(self, gradients_dict: dict) -> None:
        grads = [g for g in gradients_dict.values() if g is not None]
        if self._grad_scalers is not None or self._lr_scheduler_classes is not None or not _all_finite(grads):
            return super().apply_gradients(gradients_dict)  # RLlib's NaN/inf handling, scalers, schedulers
        for pid, grad in gradients_dict.items():
            param = self._params[pid]
            if param.grad is not grad:
                param.grad = grad
        for module_id, names in self._module_optimizers.items():
            for name in names:
                self.get_optimizer(module_id, name).step()
        return None

    def _create_iterator_if_necessary(self, *, training_data: Any, num_total_minibatches: int = 0,
                                      num_epochs: int = 1, minibatch_size: int | None = None,
                                      shuffle_batch_per_epoch: bool = False, **kwargs: Any):
        batch_iter = super()._create_iterator_if_necessary(
            training_data=training_data, num_total_minibatches=num_total_minibatches, num_epochs=num_epochs,
            minibatch_size=minibatch_size, shuffle_batch_per_epoch=shuffle_batch_per_epoch, **kwargs)
        # set modules: minibatches of whole frames; an actor's loss takes at most frame_ues UEs per frame
        # (sampled: LOSS_ROWS), a critic's one row per frame
        framed = {mid: (1 if hasattr(_unwrapped(self._module[mid]), "frame_rows") else self.frame_ues or 0)
                  for mid in self._module.keys() if getattr(_unwrapped(self._module[mid]), "frame_batched", False)}
        if type(batch_iter) is MiniBatchCyclicIterator and IndexedMiniBatches.supports(batch_iter._batch):
            return IndexedMiniBatches(batch_iter._batch, num_epochs=num_epochs, minibatch_size=minibatch_size,
                                      shuffle=shuffle_batch_per_epoch and num_epochs > 1,
                                      num_total_minibatches=num_total_minibatches,
                                      per_env_step=self.minibatch_per_env_step, framed=framed)
        if set(framed) & set(getattr(getattr(batch_iter, "_batch", None), "policy_batches", {})):
            raise NotImplementedError(f"modules {sorted(framed)} pool each frame's rows and need minibatches of "
                                      "whole frames: batches of tensors with one row per sample (no sequences)")
        if self.minibatch_per_env_step and type(batch_iter) is MiniBatchCyclicIterator:
            steps = batch_iter._batch.env_steps()
            if any(len(b) != steps for b in batch_iter._batch.policy_batches.values()):
                raise NotImplementedError("minibatches per env step need batches of tensors with one row per "
                                          "sample (no sequences); RLlib's iterator takes rows per module")
        return batch_iter


def _unwrapped(module: Any) -> Any:
    return module.unwrapped() if hasattr(module, "unwrapped") else module


class IndexedMiniBatches:
    """RLlib's ``MiniBatchCyclicIterator`` by index gathers (the same minibatches when every module has
    as many rows; else the smaller modules take proportionally fewer rows per minibatch, see
    ``LeanTorchLearner``).

    Per module, units (rows; for a module in ``framed``, whole frames: the rows that share a frame key,
    ``marl_env.observations.frame_ids``) are taken in order for the first pass and reshuffled for every
    later pass (as RLlib does); a minibatch that crosses the end of a pass continues into the next one.
    Every column is gathered once per minibatch (``tensor[index]``) instead of being sliced and
    concatenated as ``SampleBatch`` objects. ``per_env_step``: ``minibatch_size`` counts env steps, and
    a module takes its units of that many (``minibatch_size * units / env_steps``); else ``minibatch_size *
    units / most_rows``, where a framed module's rows are its loss rows: ``framed[mid]`` per frame at most
    (0: all). A framed module with ``framed[mid] > 1`` gets a ``LOSS_ROWS`` column: that many of each
    frame's rows, drawn at random (only where a frame has more).
    """

    def __init__(self, batch: MultiAgentBatch, *, num_epochs: int, minibatch_size: int, shuffle: bool,
                 num_total_minibatches: int = 0, per_env_step: bool = False, framed: dict[str, int] | None = None):
        self._batch = batch
        self._framed = framed or {}
        steps = max(1, batch.env_steps())
        self._units = {mid: _units(b, mid in self._framed) for mid, b in batch.policy_batches.items()}
        loss_rows = [u.loss_rows(self._framed.get(mid, 0)) for mid, u in self._units.items()]
        most = max(loss_rows or [1])
        unit = steps if per_env_step else most
        self._sizes = {mid: max(1, round(minibatch_size * len(u) / unit)) for mid, u in self._units.items()}
        self._epochs = num_epochs
        self._shuffle = shuffle
        self._total = num_total_minibatches

    @staticmethod
    def supports(batch: MultiAgentBatch) -> bool:
        """Batches of tensors (or tuples/dicts of them) with one row per sample (no sequences)."""
        for b in batch.policy_batches.values():
            if len(b) == 0 or b._slice_seq_lens_in_B or SampleBatch.SEQ_LENS in b:
                return False
            leaves = tree.flatten(dict(b))
            if not all(isinstance(v, torch.Tensor) and v.shape[:1] == (len(b),) for v in leaves):
                return False
        return True

    def __iter__(self):
        modules = self._batch.policy_batches
        start = dict.fromkeys(modules, 0)
        covered = dict.fromkeys(modules, 0)
        order = {mid: np.arange(len(u)) for mid, u in self._units.items()}
        count = 0
        while (self._total == 0 and min(covered.values()) < self._epochs) or (0 < self._total and count < self._total):
            minibatch = {}
            for mid, b in modules.items():
                n = len(self._units[mid])
                s, need, parts = start[mid], self._sizes[mid], []
                while s + need >= n:  # take the rest of this pass, then start a (reshuffled) new one
                    parts.append(order[mid][s:])
                    need -= n - s
                    s = 0
                    covered[mid] += 1
                    if self._shuffle:  # RLlib shuffles the batch in place: the permutations compose
                        order[mid] = order[mid][np.random.permutation(n)]
                if need > 0:
                    parts.append(order[mid][s:s + need])
                    s += need
                start[mid] = s
                chosen = np.concatenate(parts) if len(parts) > 1 else parts[0]
                units = self._units[mid]
                minibatch[mid] = _gather(b, torch.from_numpy(units.rows(chosen)))
                cap = self._framed.get(mid, 0)
                if cap > 1 and isinstance(units, Frames) and units.size[chosen].max() > cap:
                    minibatch[mid][LOSS_ROWS] = torch.from_numpy(units.sample(chosen, cap))
            yield MultiAgentBatch(minibatch, len(self._batch))
            count += 1


class _Rows:
    """Units that are single rows."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def rows(self, chosen: np.ndarray) -> np.ndarray:
        return chosen

    def loss_rows(self, cap: int) -> int:
        return self.n


class Frames:
    """Units that are frames: the rows of frame ``f`` are ``order[start[f]:start[f] + size[f]]``."""

    def __init__(self, frame_of_row: np.ndarray):
        _, inverse = np.unique(frame_of_row, return_inverse=True)
        self.order = np.argsort(inverse, kind="stable")
        self.size = np.bincount(inverse)
        self.start = np.cumsum(self.size) - self.size

    def __len__(self) -> int:
        return len(self.size)

    def rows(self, chosen: np.ndarray) -> np.ndarray:
        sizes = self.size[chosen]
        offsets = np.repeat(self.start[chosen] - (np.cumsum(sizes) - sizes), sizes) + np.arange(sizes.sum())
        return self.order[offsets]

    def loss_rows(self, cap: int) -> int:
        """Rows in the loss: ``min(size, cap)`` per frame (``cap`` 0: all)."""
        return int(np.minimum(self.size, cap).sum()) if cap else int(self.size.sum())

    def sample(self, chosen: np.ndarray, cap: int) -> np.ndarray:
        """Positions, in ``rows(chosen)``, of ``cap`` random rows of each chosen frame (all of a smaller one)."""
        sizes = self.size[chosen]
        frame = np.repeat(np.arange(len(chosen)), sizes)
        order = np.lexsort((np.random.random(len(frame)), frame))  # rows by frame, random within a frame
        rank = np.arange(len(frame)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return np.sort(order[rank < cap])


def frame_units(frame_of_row: np.ndarray) -> Frames:
    """The frames of a batch, from each row's frame id (``marl_env.observations.frame_ids``)."""
    return Frames(frame_of_row)


def _units(b: SampleBatch, framed: bool) -> _Rows | Frames:
    if not framed:
        return _Rows(len(b))
    from mahppo.marl_env.observations import frame_ids

    obs = b[Columns.OBS]
    return frame_units(frame_ids(obs.detach().cpu().numpy() if isinstance(obs, torch.Tensor) else np.asarray(obs)))


def _gather(b: SampleBatch, idx: torch.Tensor) -> SampleBatch:
    idx = idx.to(tree.flatten(dict(b))[0].device)
    return SampleBatch({k: tree.map_structure(lambda v: v[idx], v) for k, v in b.items()}, _zero_padded=b.zero_padded)


def _adam_kwargs(params: list[torch.Tensor]) -> dict[str, Any]:
    """One fused Adam kernel where torch has it for these tensors (CPU or CUDA floats)."""
    ok = params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return {"fused": True} if ok and len({p.device for p in params}) == 1 else {}


def _all_finite(grads: list[torch.Tensor]) -> bool:
    if not grads:
        return True
    norms = torch._foreach_norm(grads)
    return bool(torch.isfinite(torch.stack(norms)).all())
