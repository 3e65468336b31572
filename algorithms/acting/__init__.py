"""Deciding with a trained policy (``TrainedPolicy``, ``load_policy``) and the warm-start teacher."""
