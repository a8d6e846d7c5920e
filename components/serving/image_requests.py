"""What the image service accepts: multipart uploads within limits, and the middleware that enforces them.

Shipped inside image bentos beside ``image_service.py`` as a top-level module; it imports only
``gatekeeper`` (its neighbour), so it loads the same way from the bento and from the project
(``components.serving.image_requests``, as the unit tests do).

``ImageGatekeeper`` is the tabular ``Gatekeeper`` (API key, health probes open, POST only, per-endpoint
latency and rejection series under the same names) with one difference: the body must be
``multipart/form-data`` within a per-endpoint byte limit, where the tabular one asks for JSON.
``read_uploads`` turns the form into ``(file name, bytes)`` per upload or an ``UploadError`` with the
status and field to answer with; decoding the bytes is the model's (``ImageModel.pixels``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gatekeeper import Gatekeeper

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers: generous for any number of files we accept


class UploadError(ValueError):
    """A request the service refuses: ``status`` (400, 413, 415), ``field`` it names, the message."""

    def __init__(self, status: int, message: str, field: str | None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def refuse_upload(headers: dict[bytes, bytes], max_body_bytes: int, field: str) -> tuple[int, str, str] | None:
    """(status, error, field) for a body that is not multipart with a Content-Length within the limit."""
    media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if media_type != b"multipart/form-data":
        shown = media_type.decode(errors="replace") or "none"
        return 415, f"content-type {shown!r}: send multipart/form-data with the image in field '{field}'", field
    length = headers.get(b"content-length", b"")
    if not length.isdigit():
        return 411, "send the body with a Content-Length header", "content-length"
    if int(length) > max_body_bytes:
        return 413, f"{field}: request body of {int(length):,} bytes exceeds {max_body_bytes:,} bytes", field
    return None


class ImageGatekeeper(Gatekeeper):
    """``Gatekeeper`` for multipart image uploads: ``limits`` maps each API path to (its form field, the
    most body bytes it accepts)."""

    def __init__(self, app: Any, *, limits: Mapping[str, tuple[str, int]], open_paths: Collection[str]) -> None:
        super().__init__(
            app, api_paths=limits, open_paths=open_paths, max_body_bytes=max(n for _, n in limits.values())
        )
        self.limits = dict(limits)

    def refuse(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, dict[str, str]] | None:
        """Multipart within the path's byte limit, where the tabular service asks for JSON."""
        field, max_bytes = self.limits[path]
        refusal = refuse_upload(headers, max_bytes, field)
        if refusal is None:
            return None
        status, error, named = refusal
        return status, {"error": error, "field": named}


async def read_uploads(request: Any, field: str, *, max_files: int, max_file_bytes: int) -> list[tuple[str, bytes]]:
    """The files of form field ``field``, as (name, bytes), at most ``max_files`` of at most
    ``max_file_bytes`` each; anything else is an ``UploadError`` naming the field (or the file)."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    try:
        form = await request.form(max_files=max_files + 1, max_fields=16)
    except HTTPException as err:  # python-multipart's refusals, as Starlette raises them inside an app
        if "Too many files" in str(err.detail):
            raise UploadError(413, f"{field}: more than {max_files} files in one request", field) from None
        raise UploadError(400, f"body: not a readable multipart form ({err.detail})", None) from None
    try:
        parts = form.getlist(field)
        if not parts:
            sent = ", ".join(repr(k) for k in form.keys()) or "none"  # noqa: SIM118 (a multi-dict)
            raise UploadError(400, f"{field}: missing; send the image as form field '{field}' (fields sent: {sent})",
                              field)  # fmt: skip
        if len(parts) > max_files:
            raise UploadError(413, f"{field}: {len(parts)} files, at most {max_files} per request", field)
        uploads = []
        for i, part in enumerate(parts):
            where = field if max_files == 1 else f"{field}[{i}]"
            if not isinstance(part, UploadFile):
                raise UploadError(400, f"{where}: a text value, not a file upload", field)
            if part.size is not None and part.size > max_file_bytes:
                raise UploadError(413, f"{where}: {part.size:,} bytes is over the limit of {max_file_bytes:,}", field)
            uploads.append((part.filename or where, await part.read()))
        return uploads
    finally:
        await form.close()
