"""Several credentials on one request: a refreshable one plus static headers.

Some platforms sit behind an API gateway that wants two credentials on every call:
the platform's OAuth2 bearer token *and* the gateway's subscription key (Azure API
Management's ``Ocp-Apim-Subscription-Key``: Reckon One; the same shape is used by
other APIM-fronted APIs). :class:`~sinks.transport.http.HttpExecutor` takes a single
:class:`~sinks.transport.auth.Authenticator`, so :class:`CompositeAuth` presents
several as one:

* :meth:`apply` stamps every part; the generation is the *primary*'s (the static
  parts never change, so only the primary's renewals matter);
* :meth:`refresh` / :meth:`needs_refresh` delegate to the primary. A 401 is
  therefore cured only when the primary can renew (OAuth2); a composite whose
  primary cannot refresh raises :class:`ConfigurationError`, exactly as the
  executor does for a non-refreshable authenticator.

:func:`oauth2_with_subscription_key` builds the common case.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from pydantic import SecretStr

from sinks.core.contract import Transport
from sinks.core.errors import ConfigurationError
from sinks.transport.auth import ApiKeyAuth, Authenticator, OAuth2Auth

__all__ = [
    "APIM_SUBSCRIPTION_HEADER",
    "CompositeAuth",
    "StaticHeaderAuth",
    "oauth2_with_subscription_key",
]

#: Azure API Management's subscription-key header.
APIM_SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"


class StaticHeaderAuth(ApiKeyAuth):
    """A secret that never changes, sent in ``header`` (a named :class:`ApiKeyAuth`)."""

    def __init__(self, header: str, value: SecretStr) -> None:
        if not value.get_secret_value():
            raise ConfigurationError(f"the {header} credential is empty")
        super().__init__(value, header=header)


class CompositeAuth(Authenticator):
    """``primary`` (renewable) plus ``extras`` (static), applied together."""

    can_refresh = True

    def __init__(self, primary: Authenticator, extras: Sequence[Authenticator]) -> None:
        if any(extra.can_refresh for extra in extras):
            raise ValueError("only the primary authenticator of a composite may refresh")
        self.primary = primary
        self.extras = tuple(extras)

    def apply(self, request: httpx.Request) -> int:
        for extra in self.extras:
            extra.apply(request)
        return self.primary.apply(request)

    @property
    def generation(self) -> int:
        return self.primary.generation

    def needs_refresh(self) -> bool:
        return self.primary.needs_refresh()

    def refresh(self, send: Transport, *, stale_generation: int) -> bool | None:
        if not self.primary.can_refresh:
            raise ConfigurationError("credentials were rejected and cannot be refreshed")
        return self.primary.refresh(send, stale_generation=stale_generation)


def oauth2_with_subscription_key(oauth: OAuth2Auth, subscription_key: SecretStr, *,
                                 header: str = APIM_SUBSCRIPTION_HEADER) -> CompositeAuth:
    """Bearer token (refreshed as usual) plus the gateway's subscription key."""
    return CompositeAuth(oauth, [StaticHeaderAuth(header, subscription_key)])
