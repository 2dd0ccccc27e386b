"""Turn exceptions into one message a user can act on; the traceback goes to the server log."""

from __future__ import annotations

import logging

from rag.generate.base import GenerationError
from rag.index.store import IndexLockedError, IndexMismatchError
from rag.models import ModelError

log = logging.getLogger("rag.ui")

# These carry a message written for users (what is wrong and what to do), shown as is.
_ACTIONABLE: tuple[type[BaseException], ...] = (
    GenerationError, ModelError, IndexLockedError, IndexMismatchError, OSError, ValueError,
)


def user_message(exc: BaseException, doing: str) -> str:
    """What went wrong while `doing` (e.g. "answering"), without a stack trace."""
    if isinstance(exc, _ACTIONABLE):
        return f"Error while {doing}: {exc}"
    # Unexpected: still no traceback in the page, but keep it for whoever runs the server.
    log.exception("unexpected error while %s", doing)
    return (f"Unexpected error while {doing}: {type(exc).__name__}: {exc}. "
            "The details are in the terminal that runs `rag ui`.")
