"""All configuration, read from ``ERAS_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ERAS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///eras.db",
        description="sqlite:///path/to/file.db or postgresql://user@host:port/dbname",
    )
    env: Literal["production", "development"] = "production"
    auto_migrate: bool = Field(
        default=True, description="Bring the schema up to date when the service starts."
    )

    kinesis_username: SecretStr | None = None
    kinesis_password: SecretStr | None = None
    max_body_bytes: int = Field(
        default=20 * 1024 * 1024, gt=0, description="Largest accepted POST /kinesis body."
    )
    max_events_per_batch: int = Field(
        default=10_000, gt=0, description="Most events accepted in one POST /kinesis body."
    )

    revision: str | None = Field(
        default=None, description="Build or commit id reported by GET /; detected if unset."
    )

    panoptes_url: str = Field(
        default="https://panoptes.zooniverse.org",
        description="Panoptes API base URL, asked about tokens, groups and memberships.",
    )
    panoptes_public_key: str | None = Field(
        default=None,
        description="PEM text or path of Panoptes' RSA public key; verifies tokens locally.",
    )
    panoptes_timeout_seconds: float = Field(default=5.0, gt=0)
    panoptes_max_connections: int = Field(default=20, gt=0)
    token_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long an answer from /api/me is reused."
    )

    panoptes_client_id: str | None = Field(
        default=None, description="OAuth application id used to look up user groups."
    )
    panoptes_client_secret: SecretStr | None = None
    group_cache_seconds: float = Field(
        default=300.0, ge=0, description="How long a group's stats_visibility is reused."
    )
    membership_cache_seconds: float = Field(
        default=120.0, ge=0, description="How long a user's roles in a group are reused."
    )

    metrics_token: SecretStr | None = Field(
        default=None, description="If set, GET /metrics needs 'Authorization: Bearer <token>'."
    )

    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack incoming webhook that `eras report spurious --post` posts to.",
    )
    slack_mention: str | None = Field(
        default=None,
        description="Slack markup leading the posted report, such as <@U0123ABCD> or <!here>.",
    )
    project_link_base: str = Field(
        default="https://www.zooniverse.org/lab/",
        description="The posted report links each project to this base followed by its id.",
    )

    dashboard: bool = Field(
        default=True, description="Serve the dashboard at /dashboard/ and its data routes."
    )

    database_pool_size: int = Field(default=10, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=60_000, gt=0)

    @property
    def ingest_credentials_configured(self) -> bool:
        return bool(self.kinesis_username and self.kinesis_password)
