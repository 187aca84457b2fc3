"""collapsebench: a reproducible stress test for multi-subject personalization.

Stages (each a CLI subcommand, chained by dvc.yaml): generate -> score -> report -> site.
They exchange plain files only (see DESIGN.md): manifest.jsonl, scores.csv, table1.csv.
"""

__version__ = "0.1.0"
