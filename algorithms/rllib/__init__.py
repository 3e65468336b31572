"""The RLlib algorithm: ``MAHPPOConfig``, the actor/critic RLModules, the hybrid action codec, the learner,
the centralized-GAE connector and the vectorised sampler (Sec. 5, Alg. 1)."""
