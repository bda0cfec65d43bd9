"""Microsoft Dynamics 365 Business Central sink (API v2.0). See :mod:`.platform`."""

from sinks.platforms.business_central.platform import BusinessCentral, BusinessCentralSettings

__all__ = ["BusinessCentral", "BusinessCentralSettings"]
