"""The score stage: raw cosines per (image, subject) from pinned backbones, through the embedding cache."""
