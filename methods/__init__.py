"""Method adapters (CrossVIS, CiCo, and the oracle), registered with :mod:`benchmark.registry`."""
