"""How `bakery deploy` gets the code to FC: the artifacts (one zip per function, built with bakery_tools.package, or
prebuilt with --artifacts), the code prefix, the OSS bucket (created in the stack's region if missing) and the
uploads.

The code prefix is `<prefix>/<12 hex of the artifacts' sha256s>`: an unchanged build keeps the prefix (ROS leaves the
functions alone) and any change moves every function to new code. Objects carry their sha256 in user metadata
(`x-oss-meta-sha256`) so an upload is skipped when the same content is already there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakery_tools.deploy.clients import Engine, Step
from bakery_tools.deploy.errors import DeployError
from bakery_tools.exits import EXIT_PROBLEM, EXIT_USAGE


@dataclass(frozen=True)
class LocalArtifact:
    name: str  # bake.zip: the last part of Code.OssObjectName
    path: Path
    size: int
    sha256: str


def artifacts_digest(sha256s: Mapping[str, str]) -> str:
    """One hash of every artifact's name and sha256 (order-free)."""
    text = "".join(f"{name} {sha}\n" for name, sha in sorted(sha256s.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def code_prefix(prefix: str, sha256s: Mapping[str, str]) -> str:
    """`<prefix>/<12 hex>`: the same artifacts give the same prefix; any change gives a new one."""
    return f"{prefix.strip('/')}/{artifacts_digest(sha256s)[:12]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ArtifactPlan:
    name: str
    key: str
    path: Path
    size: int
    sha256: str
    state: str  # new | changed | unchanged

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "path": str(self.path), "size": self.size, "sha256": self.sha256,
                "state": self.state}  # fmt: skip


class Uploading(Engine):
    """The artifacts, the bucket and the uploads (a step of Deployer)."""

    def build(self, document: Mapping[str, Any]) -> list[LocalArtifact]:
        """The zips: built with bakery_tools.package into build/deploy/<stack>/ next to the template, or, with
        --artifacts DIR (what `make package` wrote), the ones the template's Code.OssObjectName names, read from
        DIR: then the functions' sources are not needed (a template outside the repository deploys too)."""
        template = self.settings.template.resolve()
        if self.settings.artifacts is not None:
            paths = self._prebuilt(template, document)
        else:
            from bakery_tools.package import PackageError, build

            out = template.parent / "build" / "deploy" / self.settings.stack
            try:
                built = build(out, template=template, cache=self.package_cache,
                              log=lambda message: self.on_step(Step("build-log", message)))  # fmt: skip
            except PackageError as exc:
                raise DeployError(EXIT_PROBLEM, "build-failed", f"building the artifacts failed: {exc}") from None
            paths = [a.path for a in built]
        artifacts = [LocalArtifact(p.name, p, p.stat().st_size, file_sha256(p)) for p in paths]
        self.on_step(Step("built", str(paths[0].parent if paths else ""), {"count": len(artifacts)}))
        return artifacts

    def _prebuilt(self, template: Path, document: Mapping[str, Any]) -> list[Path]:
        from bakery_tools.package import PackageError, artifact_names

        directory = self.settings.artifacts
        assert directory is not None
        try:
            wanted = artifact_names(document, template.name)
        except PackageError as exc:
            raise DeployError(EXIT_USAGE, "invalid-template", str(exc)) from None
        missing = [n for n in wanted if not (directory / n).is_file()]
        if missing:
            raise DeployError(EXIT_USAGE, "missing-artifact", f"{directory} has no {', '.join(missing)} (one zip per "
                              f"function of {template.name}): run `make package` or leave --artifacts out to build "
                              "them.")  # fmt: skip
        return [directory / n for n in wanted]

    def find_bucket(self, bucket: str) -> bool:
        """Whether the code bucket exists (GetBucketInfo); refuses one in another region than the stack's."""
        location = self.clients.oss.bucket_location(bucket) if bucket else None
        region = self.settings.region
        if location and location not in (f"oss-{region}", region):
            raise DeployError(EXIT_PROBLEM, "bucket-region", f"Bucket {bucket} is in {location}, the stack in "
                              f"{region}: FC reads code only from a bucket in its own region. Use a bucket in that "
                              "region (--bucket).")  # fmt: skip
        return location is not None

    def plan_artifacts(self, bucket: str, local: Sequence[LocalArtifact], prefix: str, *,
                       bucket_exists: bool) -> list[ArtifactPlan]:  # fmt: skip
        """Each artifact's object under `prefix` and whether it is new, changed or already there (HeadObject)."""
        artifacts = []
        for item in local:
            key = f"{prefix}/{item.name}"
            there = self.clients.oss.object_sha256(bucket, key) if bucket_exists else None
            state = "new" if there is None else "unchanged" if there == item.sha256 else "changed"
            artifacts.append(ArtifactPlan(item.name, key, item.path, item.size, item.sha256, state))
        return artifacts

    def ensure_bucket(self, bucket: str, *, exists: bool) -> bool:
        """PutBucket (private, Standard) when the plan found no bucket; True when it made one."""
        created = False
        if bucket and not exists:
            self.clients.oss.create_bucket(bucket)
            created = True
        if bucket:
            self.on_step(Step("bucket-created" if created else "bucket-exists", bucket,
                              {"region": self.settings.region}))  # fmt: skip
        return created

    def upload(self, bucket: str, artifacts: Sequence[ArtifactPlan], *, bucket_created: bool) -> list[str]:
        """PutObject for each artifact not already there with the same sha256; returns the names uploaded."""
        uploaded = []
        for artifact in artifacts:
            there = None if bucket_created else self.clients.oss.object_sha256(bucket, artifact.key)
            if there == artifact.sha256:
                self.on_step(Step("unchanged", artifact.name, {"key": artifact.key, "bucket": bucket}))
                continue
            self.clients.oss.upload(bucket, artifact.key, artifact.path, artifact.sha256)
            uploaded.append(artifact.name)
            self.on_step(Step("uploaded", artifact.name, {"key": artifact.key, "bucket": bucket,
                                                          "size": artifact.size}))  # fmt: skip
        return uploaded
