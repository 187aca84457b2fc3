"""What is asked: the prompt suite, the subject pool, and the model entries (models/<name>/model.yaml)."""
