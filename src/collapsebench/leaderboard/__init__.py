"""The site stage: the static Jinja2 leaderboard built from the report's files."""
