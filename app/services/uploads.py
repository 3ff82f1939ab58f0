"""Streaming uploads: the request body goes straight to ``<data>/uploads/`` with a size cap.

Starlette's form parsing would first spool the whole file to the system temp directory,
uncapped; here a multipart (or raw ``application/octet-stream``) body is parsed as it arrives,
the file part is written to the data directory, and the upload stops with a 413 as soon as it
passes the limit. The caller deletes the file when done with it (see ``app.services.datasets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from app.errors import InvalidInput, PayloadTooLarge
from app.middleware.body_limit import mark_streamed
from infra.storage import Storage

FILE_FIELD = "file"
TEXT_FIELDS = ("name", "format")
_TEXT_FIELD_LIMIT = 4096  # the other form fields are short strings (name, format)
_MAX_PARTS = 16


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"upload larger than the limit of {limit} bytes; upload a smaller file or raise "
        "BLOCKZOO_MAX_UPLOAD_BYTES on the server", details={"max_upload_bytes": limit},
    )


def _suffix(filename: str) -> str:
    # ".tar.gz" matters to the readers' hints, so keep up to two suffixes.
    return "".join(PurePosixPath(filename).suffixes[-2:])


def _safe_filename(raw: str) -> str:
    # Control characters (NUL above all) never reach a message, a row or a path.
    printable = "".join(c for c in raw if ord(c) >= 0x20 and ord(c) != 0x7F)
    name = PurePosixPath(printable.replace("\\", "/")).name.strip()
    return name[:200] or "upload"


def _checked_fields(fields: dict[str, str]) -> dict[str, str]:
    """The short text fields (name, format): printable and at most 200 characters."""
    for key, value in fields.items():
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or len(value) > 200:
            raise InvalidInput(f"form field {key!r} must be at most 200 printable characters (no control "
                               "characters such as NUL or newline)")
    return fields


async def receive_upload(request: Request, storage: Storage, max_bytes: int) -> ReceivedUpload:
    """Write the body's file to the uploads directory; raises 400/413 (the partial file removed)."""
    mark_streamed(request.scope)  # this cap, not the JSON body cap, applies
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes + 64 * 1024:
        raise _too_large(max_bytes)  # refuse before reading a byte
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise InvalidInput("multipart body without a boundary; send a multipart/form-data form")
        return await _receive_multipart(request, storage, max_bytes, boundary)
    if ctype == b"application/octet-stream":
        filename = _safe_filename(request.query_params.get("filename", "upload"))
        fields = _checked_fields({k: v for k, v in request.query_params.items() if k in ("name", "format")})
        path = storage.new_upload_path(_suffix(filename))
        try:
            size = 0
            with open(path, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return ReceivedUpload(path, filename, size, fields)
    raise InvalidInput(
        f"unsupported content type {ctype.decode() or 'none'!r}; send multipart/form-data with a "
        f"'{FILE_FIELD}' field (curl -F file=@data.npz), or application/octet-stream with ?filename="
    )


async def _receive_multipart(request: Request, storage: Storage, max_bytes: int, boundary: bytes) -> ReceivedUpload:
    state: dict = {"headers": {}, "field": b"", "value": b"", "name": None, "out": None, "parts": 0}
    upload: dict = {"path": None, "filename": None, "size": 0}
    texts: dict[str, bytearray] = {}

    def on_part_begin() -> None:
        state["headers"], state["name"] = {}, None
        state["parts"] += 1
        if state["parts"] > _MAX_PARTS:
            raise InvalidInput(f"too many form fields; send '{FILE_FIELD}' and optionally 'name' and 'format'")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if name == FILE_FIELD:
            if upload["path"] is not None:
                raise InvalidInput(f"more than one '{FILE_FIELD}' field; upload one file per request")
            filename = _safe_filename(disposition.get(b"filename", b"upload").decode("utf-8", "replace"))
            upload["filename"] = filename
            upload["path"] = storage.new_upload_path(_suffix(filename))
            state["out"] = open(upload["path"], "wb")
        elif name in TEXT_FIELDS:
            texts[name] = bytearray()
        elif b"filename" in disposition:  # a file under another name: the usual slip (-F data=@x.npz)
            raise InvalidInput(f"missing field '{FILE_FIELD}': the form sends a file in field {name!r}; send it "
                               f"as '{FILE_FIELD}' (curl -F {FILE_FIELD}=@data.npz)")
        else:
            raise InvalidInput(f"unknown form field {name!r}; accepted: '{FILE_FIELD}' (the file), "
                               + ", ".join(repr(f) for f in TEXT_FIELDS))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["name"] == FILE_FIELD:
            upload["size"] += end - start
            if upload["size"] > max_bytes:
                raise _too_large(max_bytes)
            state["out"].write(data[start:end])
        else:
            buf = texts[state["name"]]
            buf += data[start:end]
            if len(buf) > _TEXT_FIELD_LIMIT:
                raise InvalidInput(f"form field {state['name']!r} is longer than {_TEXT_FIELD_LIMIT} bytes")

    def on_part_end() -> None:
        if state["name"] == FILE_FIELD and state["out"] is not None:
            state["out"].close()
            state["out"] = None

    parser = MultipartParser(boundary, callbacks={
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if upload["path"] is None:
            raise InvalidInput(f"missing field '{FILE_FIELD}': the form has no file; send it as "
                               f"-F {FILE_FIELD}=@data.npz")
        fields = _checked_fields({k: v.decode("utf-8", "replace") for k, v in texts.items()})
    except BaseException as exc:
        if state["out"] is not None:
            state["out"].close()
        if upload["path"] is not None:
            upload["path"].unlink(missing_ok=True)
        if isinstance(exc, (InvalidInput, PayloadTooLarge)) or not isinstance(exc, Exception):
            raise
        raise InvalidInput(f"malformed multipart body: {exc}") from None
    return ReceivedUpload(upload["path"], upload["filename"], upload["size"], fields)
