"""Who may see what. Routes ask here; nothing else decides."""

from __future__ import annotations

import enum
from typing import Final

from eras.auth.tokens import Identity
from eras.errors import Forbidden

NOT_YOUR_STATS: Final = "You may only view your own classification stats"
MEMBERS_ONLY: Final = "Only members of this group may view these stats"
GROUP_ADMINS_ONLY: Final = "Only admins of this group may view these stats"
ADMINS_ONLY: Final = "Only Zooniverse admins may view this report"


def authorize_user_stats(viewer: Identity, user_id: int) -> None:
    """A volunteer sees their own stats; Zooniverse admins see everyone's."""
    if not (viewer.admin or viewer.user_id == user_id):
        raise Forbidden(NOT_YOUR_STATS)


def authorize_admin(viewer: Identity) -> None:
    """Reports about other volunteers are for Zooniverse admins only."""
    if not viewer.admin:
        raise Forbidden(ADMINS_ONLY)


class Audience(enum.Enum):
    ANYONE = "anyone"
    MEMBERS = "members"
    GROUP_ADMINS = "group admins"


# stats_visibility -> (who sees the aggregate, who sees the per-member breakdown)
GROUP_VISIBILITY: Final[dict[str, tuple[Audience, Audience]]] = {
    "public_show_all": (Audience.ANYONE, Audience.ANYONE),
    "public_agg_show_ind_if_member": (Audience.ANYONE, Audience.MEMBERS),
    "public_agg_only": (Audience.ANYONE, Audience.GROUP_ADMINS),
    "private_show_agg_and_ind": (Audience.MEMBERS, Audience.MEMBERS),
    "private_agg_only": (Audience.MEMBERS, Audience.GROUP_ADMINS),
}
# A value Panoptes might add later is treated as the most private one known.
_UNKNOWN_VISIBILITY: Final = GROUP_VISIBILITY["private_agg_only"]

GROUP_ADMIN_ROLE: Final = "group_admin"


def group_audience(stats_visibility: str, *, breakdown: bool) -> Audience:
    aggregate, members = GROUP_VISIBILITY.get(stats_visibility, _UNKNOWN_VISIBILITY)
    return members if breakdown else aggregate


def authorize_group_stats(audience: Audience, viewer: Identity, roles: frozenset[str]) -> None:
    """``roles`` are the viewer's roles in the group (empty when not a member)."""
    if viewer.admin or audience is Audience.ANYONE:
        return
    if audience is Audience.MEMBERS and not roles:
        raise Forbidden(MEMBERS_ONLY)
    if audience is Audience.GROUP_ADMINS and GROUP_ADMIN_ROLE not in roles:
        raise Forbidden(GROUP_ADMINS_ONLY)
