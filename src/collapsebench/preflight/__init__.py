"""`collapsebench preflight MODEL`: the entry's real adapter and inference code on a tiny random-weight twin.

A GPU hour is spent only on an entry whose code path is proven first: the same classes as the real checkpoint,
at a size a CPU runs in seconds (config beside the entry, models/<name>/preflight.yaml), driven through the
generate stage at N=2 and N=10 with benchmark prompts and references. Modules, one job each:

- spec.py      reads models/<name>/preflight.yaml
- twins.py     builds a diffusers pipeline twin from that file (components by class and config)
- drivers/     per adapter kind: where its twin weights go, what counts its references, what can be switched off
- checks.py    runs the jobs and makes the checks
- record.py    the table, and results/preflight/<model>.json
- container.py the same command inside the model's image (the GPU workflow's step)
- run.py       ties them together for the CLI
"""
