"""The web dashboard: server-rendered pages and a JSON API under /api over the same queries as
the CLI (myapp.operations). `python -m myapp dashboard`, or inside a worker (`Dashboard:Enabled`).
"""
