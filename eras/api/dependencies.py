"""Objects the routes get from the application: settings and the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from eras.auth.groups import GroupAccess
from eras.auth.tokens import Authenticator
from eras.config import Settings
from eras.store.database import Database


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


async def get_group_access(request: Request) -> GroupAccess:
    access: GroupAccess = request.app.state.group_access
    return access


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
GroupAccessDep = Annotated[GroupAccess, Depends(get_group_access)]
