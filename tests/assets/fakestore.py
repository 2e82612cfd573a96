"""``fakestore``: an in-memory object store for core's asset tests.

Like S3 emulators, it does not enforce what a URL signs: ``put`` stores any body under any
content type, so tests can upload something else than was agreed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pixecom_core import hookimpl
from pixecom_core.providers import PresignedUpload, Storage, StoredObjectInfo, UploadRequest

IDENTIFIER = "fakestore"


class FakeStore:
    identifier = IDENTIFIER
    display_name = "FakeStore"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.presigned: list[UploadRequest] = []
        self.deleted: list[str] = []

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = (body, content_type)

    async def presign_upload(self, request: UploadRequest) -> PresignedUpload:
        self.presigned.append(request)
        return PresignedUpload(
            url=f"https://fakestore.test/{request.key}?signed",
            headers={
                "Content-Type": request.content_type,
                "Content-Length": str(request.content_length),
            },
            expires_at=datetime.now(UTC) + request.expires_in,
        )

    async def head(self, key: str) -> StoredObjectInfo | None:
        if key not in self.objects:
            return None
        body, content_type = self.objects[key]
        return StoredObjectInfo(key=key, size=len(body), content_type=content_type)

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.deleted.append(key)

    async def read_prefix(self, key: str, length: int) -> bytes:
        return self.objects[key][0][:length]


class FakeStorePlugin:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    @hookimpl
    def pixecom_register_storage(self) -> list[Storage]:
        return [self.store]
