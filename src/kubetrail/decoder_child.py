"""The entry point of the decoding child process (see :mod:`kubetrail.decoder_process`).

The child refuses to import pandas (:mod:`kubetrail.nopandas`): pyarrow would import it on the
first ``pa.array`` of a Python list, and it cost the child 34 MB of its 105 MB. The refusal is
installed before anything else is imported.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence

from kubetrail.nopandas import refuse_pandas


def main(argv: Sequence[str]) -> None:
    """Decode the job given as JSON in ``argv[1]`` (written by the parent)."""
    refuse_pandas()
    # Ctrl-C reaches the whole process group: the parent handles it and stops the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from kubetrail.decoder_process import run_child
    from kubetrail.model.arrowpool import use_system_pool

    use_system_pool()  # as the parent does: freed chunk buffers go back at once
    run_child(json.loads(argv[1]))


if __name__ == "__main__":
    main(sys.argv)
