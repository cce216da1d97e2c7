"""The operator's queries: what the CLI commands, the dashboard pages and its JSON API read."""
