"""The generate stage: run a model over the benchmark jobs, resumably, locally or in its container, in shards."""
