"""Submissions: validating model folders and results submissions before anything runs."""
