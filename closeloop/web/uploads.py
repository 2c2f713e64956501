"""Upload size limits enforced while the request streams in, not after it has landed on disk.

`SizeLimitHandler` runs first in `FILE_UPLOAD_HANDLERS`, ahead of Django's memory and
temporary-file handlers, for every form that takes files (status page, public request forms):
1. a request whose Content-Length is larger than any form may take (`request_cap()`) has every
   file refused from its first byte: no later handler opens a file for it;
2. otherwise each file's bytes are counted as they arrive and passed on; once a file passes
   `CLOSELOOP_MAX_UPLOAD_BYTES`, what the later handlers hold of it is closed (Django deletes a
   temporary file on close) and the rest is read and dropped;
3. the form receives an empty `RefusedUpload` in the file's place whose `size` says how large it
   was, so the form's own size check gives its usual clear message and the form's other fields
   still arrive. Nothing of a refused file stays in memory or on disk.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers

# The most files any of our forms accepts in one request (the public request form's attachments).
MOST_FILES_PER_REQUEST = 10


def request_cap() -> int:
    """The largest request body that can still be valid: every file at the limit plus the form's fields."""
    return MOST_FILES_PER_REQUEST * settings.CLOSELOOP_MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RefusedUpload(UploadedFile):
    """Stands in for a file that was too large: no content, only its name and how big it was."""

    def __init__(self, name: str, content_type: str, size: int) -> None:
        super().__init__(BytesIO(b""), name=name, content_type=content_type, size=size)


class SizeLimitHandler(FileUploadHandler):
    def handle_raw_input(self, input_data: Any, META: Any, content_length: int, boundary: Any,
                         encoding: str | None = None) -> None:
        self.declared = content_length or 0
        self.whole_request_too_big = self.declared > request_cap()

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0
        self.refused = self.whole_request_too_big
        if self.refused:
            raise StopFutureHandlers  # the memory and temporary-file handlers never open this file

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if not self.refused and self.received > settings.CLOSELOOP_MAX_UPLOAD_BYTES:
            self.refused = True
            self._drop_what_the_others_hold()
        return None if self.refused else raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if not self.refused:
            return None  # within the limit: the next handler hands over the file
        size = max(self.received, self.declared if self.whole_request_too_big else 0)
        return RefusedUpload(self.file_name or "document", self.content_type or "", size)

    def _drop_what_the_others_hold(self) -> None:
        """Close the later handlers' copy of this file (a temporary file is deleted when closed)."""
        handlers = list(getattr(self.request, "upload_handlers", []))
        for handler in handlers[handlers.index(self) + 1:] if self in handlers else []:
            if hasattr(handler, "file"):
                handler.file.close()
