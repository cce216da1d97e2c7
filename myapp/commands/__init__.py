"""CLI sub-commands of the built-in handlers."""
