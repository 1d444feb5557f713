"""A function's code: fetched from the emulated OSS (or Code.ZipFile), unpacked safely into the service's work dir."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError
from localcloud.services.ros.models import MAX_CODE_BYTES, Stack

if TYPE_CHECKING:
    from localcloud.services.ros import RosService


class StackCodeMixin:
    """Function code for the stack's FC3 functions, unpacked into the service's work directory."""

    def _fetch_code(self: RosService, stack: Stack, logical_id: str, code: Any) -> Path:
        """FC reads the code package from OSS: must exist, must be a zip; unpacked safely into our work dir."""
        if not isinstance(code, dict):
            raise self._failure(logical_id, ApiError("InvalidArgument", "Code is required.", 400))
        if code.get("ZipFile"):
            try:
                data = base64.b64decode(str(code["ZipFile"]), validate=True)
            except ValueError:
                raise self._failure(
                    logical_id, ApiError("InvalidArgument", "Code.ZipFile is not valid Base64.")
                ) from None
        else:
            bucket, key = code.get("OssBucketName"), code.get("OssObjectName")
            if not bucket or not key:
                raise self._failure(
                    logical_id, ApiError("InvalidArgument", "Code.OssBucketName and Code.OssObjectName are required.")
                )
            oss = getattr(self.cloud, "oss", None)
            if oss is None:
                raise self._failure(
                    logical_id, ApiError("NoSuchBucket", "OSS is not emulated by this local cloud.", 404)
                )
            try:
                data = bytes(oss.read_object(str(bucket), str(key)))
            except ApiError as error:
                raise self._failure(
                    logical_id,
                    ApiError(
                        error.code,
                        f"Failed to get code from OSS (bucket: {bucket}, object: {key}): {error.message}",
                        error.status,
                    ),
                ) from None
        self._dirs += 1
        target = self._work_dir() / stack.stack_id / f"{self._dirs:04d}-{logical_id}"
        try:
            _unzip(data, target)
        except ValueError as error:
            shutil.rmtree(target, ignore_errors=True)
            raise self._failure(
                logical_id, ApiError("InvalidArgument", f"The code package is invalid: {error}")
            ) from None
        return target

    def _work_dir(self: RosService) -> Path:
        if self._work is None:
            # A RAM-backed tmpfs when there is one: a code zip is ~5,000 small files, which take seconds to write
            # to a slow disk, and the unpacking runs under the cloud's lock.
            shm = Path("/dev/shm")
            fast = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
            self._work = Path(tempfile.mkdtemp(prefix="localcloud-ros-", dir=fast))
        return self._work


def _unzip(data: bytes, target: Path) -> None:
    """Unpack a code zip under `target`: no absolute paths, no `..`, no links, bounded size (zip-slip safe).

    The checks are lexical — every entry is refused before anything is written if one is unsafe, no link is
    ever created, and `target` is a fresh directory — so no path needs resolving (resolving each of a code
    zip's ~5,000 entries made one unpack take seconds, all of it under the cloud's lock)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("the object is not a zip file") from None
    with archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > MAX_CODE_BYTES:
            raise ValueError(f"it unpacks to more than {MAX_CODE_BYTES // (1024 * 1024)} MB")
        planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for member in members:
            name = member.filename.replace("\\", "/")
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
                raise ValueError(f"entry {member.filename!r} would be written outside the code directory")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise ValueError(f"entry {member.filename!r} is a symbolic link")
            planned.append((member, path))
        target.mkdir(parents=True, exist_ok=True)
        made: set[PurePosixPath] = set()
        for member, path in planned:
            folder = path if member.is_dir() else path.parent
            if folder not in made:
                (target / folder).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            if not member.is_dir():
                (target / path).write_bytes(archive.read(member))
