"""The one table from error class to HTTP status, and the error body.

Every failure leaves the API as `{"message": "<text>"}` with a JSON content
type; the docker CLI prints `Error response from daemon: <text>` and docker-py
picks its exception class from the status (and, for images, from the text
"No such image", which services put in their NotFound messages).
"""

from __future__ import annotations

from dockyard import errors

# Looked up along the exception's MRO, so a subclass added later in the error
# tree inherits its parent's status until it is given its own row here.
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    errors.InvalidArgument: 400,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.NotSupported: 501,
    errors.Unavailable: 503,
    errors.EngineError: 500,
}


class HttpError(errors.EngineError):
    """An error that only exists at the HTTP layer: unknown route, bad method."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def status_for(exc: BaseException) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def message_for(exc: BaseException) -> str:
    if isinstance(exc, errors.EngineError):
        return exc.message
    return str(exc) or type(exc).__name__
