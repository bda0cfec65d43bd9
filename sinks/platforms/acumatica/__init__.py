"""Acumatica contract-based REST (Default/24.200.001): spec, mapping, flows
(see :mod:`.platform`)."""

from sinks.platforms.acumatica.platform import (
    NAME,
    Acumatica,
    AcumaticaSettings,
    login_request,
    logout_request,
)

__all__ = ["NAME", "Acumatica", "AcumaticaSettings", "login_request", "logout_request"]
