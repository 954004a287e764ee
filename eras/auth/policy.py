"""Who may see what. Routes ask here; nothing else decides."""

from __future__ import annotations

from eras.auth.tokens import Identity
from eras.errors import Forbidden

NOT_YOUR_STATS = "You may only view your own classification stats"


def authorize_user_stats(viewer: Identity, user_id: int) -> None:
    """A volunteer sees their own stats; Zooniverse admins see everyone's."""
    if not (viewer.admin or viewer.user_id == user_id):
        raise Forbidden(NOT_YOUR_STATS)
