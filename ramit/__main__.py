"""`python -m ramit ...` (what `torchrun ... -m ramit train ...` launches)."""

from ramit.cli import app

app()
