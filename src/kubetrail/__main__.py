"""``python -m kubetrail``: the same as the ``kubetrail`` command."""

from .cli import main

main()
