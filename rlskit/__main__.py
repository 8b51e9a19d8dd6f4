"""``python -m rlskit`` runs the command line."""

from .cli import app

app(prog_name="rlskit")
