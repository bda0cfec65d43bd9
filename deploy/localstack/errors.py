"""Errors of the local stack: each names the component and the endpoint."""


class StackError(RuntimeError):
    """A part of the local stack could not be prepared, started or reached."""


class ServiceUnreachable(StackError):
    """An endpoint did not answer within the allowed time."""

    def __init__(self, component: str, endpoint: str, timeout_s: float, cause: str) -> None:
        self.component = component
        self.endpoint = endpoint
        super().__init__(f"{component} at {endpoint} did not answer within {timeout_s:g}s: {cause}")
