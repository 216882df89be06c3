"""Makes every Python started with this folder on PYTHONPATH use the slowed in-house adapter.

    PYTHONPATH=scripts/slowdown QPBENCH_TRIAL_SLOWDOWN=burn:0.25 qpbench run ci ...

Python imports ``sitecustomize`` at startup, in the runner's worker processes too (they inherit
the environment). The registry looks ``InHouseAdapter`` up in ``qpbench.adapters.inhouse`` each
time it hands out an adapter, so replacing that name is enough; qpbench itself is not changed.
The paired check's baseline build drops PYTHONPATH, so in a paired trial only the candidate is
slowed. For the regression-gate trials only (``scripts/regression_trials.py``).
"""

import os

if os.environ.get("QPBENCH_TRIAL_SLOWDOWN"):
    from slowed_inhouse import SlowedInHouseAdapter

    import qpbench.adapters.inhouse

    qpbench.adapters.inhouse.InHouseAdapter = SlowedInHouseAdapter  # type: ignore[misc]
