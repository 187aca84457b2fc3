"""The shared core every stage stands on: errors, crash-safe writes, the manifest, the metric table."""
