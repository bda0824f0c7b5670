"""A Jepsen-style chaos run of a sandbox cluster (``benchmarks/chaos.py``).

``history`` (the records a run writes, one JSON object a line), ``nemesis`` (the
seeded plan of faults, pure), ``invariants`` (pure checkers of a history),
``workload`` (the units and the client's writes), ``injector`` (faults applied to
a sandbox), ``sampler`` (systemd inside every machine, every 100 ms).
"""
