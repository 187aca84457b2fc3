"""Where a model's generation runs: `local` (this process) or `docker` (its pinned, locked-down container)."""
