"""Oracle NetSuite sinks: REST record API (default, :mod:`.rest`) and SuiteTalk SOAP
upsert (named option, :mod:`.soap`). Both upsert by external id; see
``docs/platforms/netsuite.md``."""

from sinks.platforms.netsuite.common import NetSuiteSettings
from sinks.platforms.netsuite.rest import SPEC, NetSuiteRest
from sinks.platforms.netsuite.soap import SOAP_SPEC, NetSuiteSoap

__all__ = ["SOAP_SPEC", "SPEC", "NetSuiteRest", "NetSuiteSettings", "NetSuiteSoap"]
