"""Registry failures, in the words dockerd uses (Go's `Method "url": reason`, errcode's `code: message`).

`RegistryError` is an `EngineError` (HTTP 500, as dockerd answers for registry
failures); `Unauthorized` marks an authentication failure, which `POST /auth`
answers with 401.  A missing manifest or blob is `dockyard.errors.NotFound`.
"""

from __future__ import annotations

import json

from ..errors import EngineError


class RegistryError(EngineError):
    """The registry could not be reached or answered with an error.

    `reason` is the message without the request it came from (`no basic auth
    credentials` for `Head "http://…": no basic auth credentials`): what dockerd
    prints where it names no request, as in a push.
    """

    def __init__(self, message: str, hint: str = "", reason: str = ""):
        super().__init__(message, hint)
        self.reason = reason or message


class Unauthorized(RegistryError):
    """The registry refused the credentials (or wanted some and got none)."""


def errcode_text(body: bytes) -> str:
    """A distribution error body as Go's errcode prints it: `manifest unknown: manifest unknown`.

    Several errors are joined the way errcode.Errors does; "" when the body holds none.
    """
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = obj.get("errors") if isinstance(obj, dict) else None
    if not isinstance(errors, list) or not errors:
        return ""
    texts = []
    for item in errors:
        if not isinstance(item, dict):
            continue
        code = str(item.get("code") or "unknown").lower().replace("_", " ")
        message = item.get("message")
        texts.append(f"{code}: {message}" if message else code)
    if not texts:
        return ""
    if len(texts) == 1:
        return texts[0]
    return "errors:\n" + "".join(t + "\n" for t in texts)


def errcode_codes(body: bytes) -> set[str]:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return set()
    errors = obj.get("errors") if isinstance(obj, dict) else None
    return {str(e.get("code")) for e in errors or () if isinstance(e, dict)}


_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    307: "Temporary Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 416: "Requested Range Not Satisfiable", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def status_text(status: int) -> str:
    """`401 Unauthorized`, as Go's http.Response.Status reads."""
    return f"{status} {_REASONS.get(status, '')}".rstrip()
