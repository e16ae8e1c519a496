"""`python -m storekeeper` runs the command line."""

from storekeeper.cli import app

app()
