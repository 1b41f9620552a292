"""Property tests against hostile input: a bounded number of examples in the suite, more with
``SWARM_FUZZ=N`` (N examples per test, e.g. ``SWARM_FUZZ=100000``).

No example database is kept (``database=None``): a failure prints the falsifying example and
the ``@reproduce_failure`` line to paste, which is all a rerun needs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("SWARM_FUZZ", "0") or 0)

settings.register_profile(
    "swarm-fuzz",
    max_examples=EXAMPLES or 60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.load_profile("swarm-fuzz")
