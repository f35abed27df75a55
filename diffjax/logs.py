"""Console logging for the entry points: diffjax's own INFO lines, libraries' at WARNING."""
from __future__ import annotations

import logging


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Shows the 'diffjax' logger at `level` on stderr and quiets absl (orbax logs every save and
    restore at INFO). Returns the 'diffjax' logger."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    log = logging.getLogger("diffjax")
    log.setLevel(level)
    if not log.handlers:
        log.addHandler(logging.StreamHandler())
    log.propagate = False
    return log
