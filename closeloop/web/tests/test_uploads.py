"""Oversized uploads are stopped while they stream in: nothing past the limit reaches the disk,
the requester reads the usual clear message, and nothing is stored."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.test.client import BOUNDARY, encode_multipart

from closeloop.cases import actions
from closeloop.cases.links import status_token
from closeloop.cases.models import Case, Document, Event

LIMIT = 1024 * 1024


class WatchedBody(io.BytesIO):
    """A request body as the server reads it; at every read it notes the temporary upload files on disk."""

    def __init__(self, data: bytes, temp_dir: Path) -> None:
        super().__init__(data)
        self.temp_dir, self.files_seen, self.most_on_disk = temp_dir, set[str](), 0

    def read(self, size: int | None = -1) -> bytes:
        self._look()
        return super().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        self._look()
        return super().readline(size)

    def _look(self) -> None:
        for path in self.temp_dir.iterdir():
            self.files_seen.add(path.name)
            try:
                self.most_on_disk = max(self.most_on_disk, path.stat().st_size)
            except FileNotFoundError:
                pass


@pytest.fixture
def small_limits(settings: Any, tmp_path: Path) -> Path:
    settings.CLOSELOOP_MAX_UPLOAD_BYTES = LIMIT
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # anything larger goes through a temporary file
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    return tmp_path


def _post(client: Client, url: str, fields: dict[str, Any], temp_dir: Path) -> tuple[Any, WatchedBody]:
    body = encode_multipart(BOUNDARY, fields)
    watched = WatchedBody(body, temp_dir)
    # An equal string but not the constant itself, so the client sends the encoded body as given.
    response = client.post(url, body, content_type=f"multipart/form-data; boundary={BOUNDARY}",
                           **{"wsgi.input": watched})
    return response, watched


def _awaiting(practice: Any, referral: Case) -> str:
    actions.request_missing_info(referral, actions.Actor.of(practice.coordinator))
    return f"/s/{status_token(Case.objects.get(pk=referral.pk))}/"


def _pdf(size: int) -> io.BytesIO:
    upload = io.BytesIO(b"%PDF-1.4\n" + b"0" * size)
    upload.name = "scan.pdf"
    return upload


def test_a_file_past_the_limit_is_stopped_while_it_streams(practice: Any, referral: Case, small_limits: Path) -> None:
    url, client = _awaiting(practice, referral), Client()
    response, watched = _post(client, url, {"form": "upload", "document": _pdf(3 * LIMIT),
                                            "for_field": "insurance_payer"}, small_limits)
    assert response.status_code == 302
    assert watched.most_on_disk <= LIMIT  # the 3 MB never reached the disk past the limit
    assert list(small_limits.iterdir()) == []
    assert "scan.pdf is 3 MB; the limit is 1 MB" in client.get(url).content.decode()
    assert not Document.objects.exists()
    assert not Event.objects.filter(case=referral, kind="message_received").exists()


def test_a_request_declared_too_large_writes_nothing_to_disk(practice: Any, referral: Case, small_limits: Path) -> None:
    url, client = _awaiting(practice, referral), Client()
    response, watched = _post(client, url, {"form": "upload", "document": _pdf(12 * LIMIT)}, small_limits)
    assert response.status_code == 302
    assert watched.files_seen == set() and list(small_limits.iterdir()) == []
    assert "scan.pdf is 12 MB; the limit is 1 MB" in client.get(url).content.decode()
    assert not Document.objects.exists()


def test_a_file_within_the_limit_still_arrives(practice: Any, referral: Case, small_limits: Path) -> None:
    url = _awaiting(practice, referral)
    response, watched = _post(Client(), url, {"form": "upload", "document": _pdf(LIMIT - 100)}, small_limits)
    assert response.status_code == 302 and watched.files_seen  # it went through a temporary file, as large uploads do
    assert Document.objects.get().size == LIMIT - 100 + len(b"%PDF-1.4\n")
    assert list(small_limits.iterdir()) == []


def test_the_public_request_form_refuses_an_oversized_attachment_clearly(practice: Any,
                                                                         small_limits: Path) -> None:
    fields = {"name": "Maria Gonzalez", "email": "maria@example.com", "message": "My records, please.",
              "consent": "on", "attachments": _pdf(2 * LIMIT)}
    response, watched = _post(Client(), "/forms/records/", fields, small_limits)
    assert response.status_code == 200 and watched.most_on_disk <= LIMIT and list(small_limits.iterdir()) == []
    assert "scan.pdf is 2 MB; the limit is 1 MB" in response.content.decode()
    assert "Maria Gonzalez" in response.content.decode()  # the fields sent with it came back to correct
    assert not Case.objects.exists()


def test_a_small_limit_is_stated_in_kilobytes_not_as_0_mb(practice: Any, referral: Case, small_limits: Path,
                                                           settings: Any) -> None:
    settings.CLOSELOOP_MAX_UPLOAD_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 300 * 1024
    url, client = _awaiting(practice, referral), Client()
    response, _ = _post(client, url, {"form": "upload", "document": _pdf(400 * 1024)}, small_limits)
    assert response.status_code == 302
    assert "scan.pdf is 400 KB; the limit is 300 KB" in client.get(url).content.decode()
