"""Builders of tiny, random-weight stand-ins (pools, tokenizers, pipelines) shared by tests, benches and preflight.

They live in the package, not in tests/, so that `bench/` and `collapsebench preflight` run in the environment
of a plain install (no pytest) and every user of a builder gets the same one.
"""
