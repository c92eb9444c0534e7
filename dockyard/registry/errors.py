"""The distribution spec's errors: a code, its HTTP status and standard message, and a detail.

The body is the spec's `{"errors": [{"code": …, "message": …, "detail": …}]}`;
the messages are Docker Distribution's, which clients print
(`manifest unknown: manifest unknown`).
"""

from __future__ import annotations

from dockyard import jsonio

# code -> (status, message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "UNKNOWN": (500, "unknown error"),
}

ERROR_CONTENT_TYPE = "application/json; charset=utf-8"


class RegistryError(Exception):
    """One spec error; `status` overrides the code's usual one (416 for an out-of-order chunk…)."""

    def __init__(self, code: str, detail=None, *, status: int | None = None, message: str | None = None,
                 headers: list[tuple[str, str]] | None = None):
        default_status, default_message = CODES[code]
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.detail = detail
        self.headers = headers or []
        super().__init__(f"{self.code}: {self.message}" + (f" ({detail})" if detail else ""))

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}

    def body(self) -> bytes:
        return (jsonio.dumps(self.to_json()) + "\n").encode()
