"""The report stage: Table 1 with paired-bootstrap intervals, per-scene tables, figures, the validity study."""
