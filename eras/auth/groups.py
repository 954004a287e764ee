"""User groups as Panoptes knows them, cached, and the check of who may read their stats."""

from __future__ import annotations

from dataclasses import dataclass

from eras.auth.cache import TTLCache
from eras.auth.panoptes import PanoptesClient
from eras.auth.policy import Audience, authorize_group_stats, group_audience
from eras.auth.tokens import Authenticator
from eras.errors import NotFound


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    stats_visibility: str


@dataclass(frozen=True, slots=True)
class _Lookup:
    """A cached answer, including "no such group", so unknown ids are not re-asked each time."""

    group: Group | None


class GroupDirectory:
    def __init__(
        self,
        client: PanoptesClient,
        *,
        group_cache_seconds: float,
        membership_cache_seconds: float,
    ) -> None:
        self._client = client
        self._groups: TTLCache[int, _Lookup] = TTLCache(group_cache_seconds)
        self._roles: TTLCache[tuple[int, int], frozenset[str]] = TTLCache(membership_cache_seconds)

    async def group(self, group_id: int) -> Group:
        lookup = await self._groups.get_or_load(group_id, lambda: self._load_group(group_id))
        if lookup.group is None:
            raise NotFound(f"User group {group_id} not found")
        return lookup.group

    async def _load_group(self, group_id: int) -> _Lookup:
        try:
            found = await self._client.user_group(group_id)
        except NotFound:
            return _Lookup(None)
        return _Lookup(Group(id=group_id, stats_visibility=str(found.get("stats_visibility"))))

    async def roles(self, *, user_id: int, token: str, group_id: int) -> frozenset[str]:
        """The user's roles in the group; empty when they are not a member.

        A member has a membership with at least one role; a membership Panoptes marks inactive
        (the user left or was removed) does not count.
        """

        async def load() -> frozenset[str]:
            memberships = await self._client.memberships(token, user_id=user_id, group_id=group_id)
            roles: set[str] = set()
            for membership in memberships:
                if membership.state != "inactive":
                    roles |= membership.roles
            return frozenset(roles)

        return await self._roles.get_or_load((user_id, group_id), load)


class GroupAccess:
    """Decides, with the fewest Panoptes calls, whether a request may read a group's stats."""

    def __init__(self, directory: GroupDirectory, authenticator: Authenticator) -> None:
        self._directory = directory
        self._authenticator = authenticator

    async def check(self, group_id: int, authorization: str | None, *, breakdown: bool) -> bool:
        """Raise unless the request may read the stats; return whether that took a token (the
        answer is then private to its reader)."""
        group = await self._directory.group(group_id)
        audience = group_audience(group.stats_visibility, breakdown=breakdown)
        if audience is Audience.ANYONE:
            # Public: whatever the header holds (often "Bearer null") is not even looked at.
            return False
        identity, token = await self._authenticator.require_with_token(authorization)
        roles: frozenset[str] = frozenset()
        if not identity.admin:
            roles = await self._directory.roles(
                user_id=identity.user_id, token=token, group_id=group_id
            )
        authorize_group_stats(audience, identity, roles)
        return True
