"""Settings of the transport layer (pydantic-settings; nothing else reads the environment)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TransportSettings"]


class TransportSettings(BaseSettings):
    """``LEDGERSTREAM_TRANSPORT_*`` environment variables.

    ``token_encryption_key`` is a urlsafe-base64 32-byte AES key
    (:func:`sinks.transport.auth.generate_token_key` makes one); keys listed in
    ``token_encryption_old_keys`` still decrypt, so keys can be rotated without
    re-connecting every tenant.
    """

    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_TRANSPORT_", extra="ignore")

    token_encryption_key: SecretStr | None = None
    token_encryption_old_keys: list[SecretStr] = Field(default_factory=list)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    pool_timeout: float = 5.0
    #: Refresh OAuth access tokens this long before they expire.
    refresh_margin_seconds: float = 120.0
