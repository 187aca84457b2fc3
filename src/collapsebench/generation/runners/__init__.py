"""Where a model's generation runs: `local` (this process) or `docker` (its pinned, locked-down container, run by
Docker, Podman or Apptainer: the engine, `generate.engine` or `--engine`)."""
