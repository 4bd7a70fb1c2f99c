"""``python -m kubetrail``: the same as the ``kubetrail`` command."""

from .cli import run

run()
