"""``rliable`` with the ``arch`` it can import: rliable 1.2 passes ``random_state=`` to arch's bootstrap, which
arch 8 (the first that imports with pandas 3) calls ``seed=``. ``library()`` returns ``rliable.library`` with
that one keyword translated (nothing else changes).

    from _rliable import library, metrics
"""

from __future__ import annotations

import inspect

try:
    from rliable import metrics  # noqa: F401  (re-exported)
except ImportError as exc:  # an optional extra: the library and the tests do not need it
    raise SystemExit(f"the benchmarks' statistics need rliable ({exc}): pip install -e '.[bench]' "
                     "(or make bench)") from None


def library():
    import arch.bootstrap.base as base

    init = base.IIDBootstrap.__init__
    if "random_state" not in inspect.signature(init).parameters and not getattr(init, "_rliable_shim", False):
        def shim(self, *args, random_state=None, **kwargs):
            init(self, *args, seed=random_state, **kwargs)

        shim._rliable_shim = True  # type: ignore[attr-defined]
        base.IIDBootstrap.__init__ = shim
    from rliable import library as rly

    return rly
