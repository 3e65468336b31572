"""Intermediate-feature compression (paper Sec. 2): split models, 1x1-conv autoencoder + quantization
(Eqs. 1-4), two-stage training as Ray tasks, and device profiles for ``marl_env``.

Submodules import torch; this package itself stays light so ``mahppo --help`` is fast.
"""
