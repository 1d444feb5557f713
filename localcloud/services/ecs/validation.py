"""Input rules ECS enforces on names, descriptions and tags (alibaba-apis.md §2.2, §2.5, §2.12)."""

from __future__ import annotations

import re

from localcloud.errors import ApiError

_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_.\-]{1,127}$")
_RESERVED_PREFIXES = ("aliyun", "acs:")
MAX_TAGS_PER_RESOURCE = 20

PLATFORMS = {
    "Aliyun", "Anolis", "CentOS", "Ubuntu", "CoreOS", "SUSE", "Debian", "OpenSUSE", "FreeBSD", "RedHat",
    "Kylin", "UOS", "Fedora", "Fedora CoreOS", "CentOS Stream", "AlmaLinux", "Rocky Linux", "Gentoo",
    "Customized Linux", "Others Linux", "Windows Server 2022", "Windows Server 2019", "Windows Server 2016",
    "Windows Server 2012", "Windows Server 2008", "Windows Server 2003",
}  # fmt: skip
ARCHITECTURES = {"i386", "x86_64", "arm64"}
BOOT_MODES = {"BIOS", "UEFI", "UEFI-Preferred"}


def check_image_name(name: str, code: str = "InvalidImageName.Malformed") -> None:
    if not _NAME.match(name) or name.lower().startswith(("http://", "https://", *_RESERVED_PREFIXES)):
        raise ApiError(
            code,
            "The specified Image name is wrongly formed: 2-128 characters, starting with a letter, "
            "letters, digits, ':', '_', '-' and '.', not starting with aliyun, acs:, http:// or https://.",
        )


def check_family(family: str) -> None:
    if not _NAME.match(family) or family.lower().startswith(("http://", "https://", *_RESERVED_PREFIXES)):
        raise ApiError(
            "InvalidImageFamily.Malformed",
            "The specified ImageFamily is wrongly formed: 2-128 characters, starting with a letter, "
            "not starting with aliyun, acs:, http:// or https://.",
        )


def check_description(description: str) -> None:
    if not 2 <= len(description) <= 256 or description.lower().startswith(("http://", "https://")):
        raise ApiError(
            "InvalidDescription.Malformed",
            "The specified description is wrongly formed: 2-256 characters, not starting with http:// or https://.",
        )


def check_tags(pairs: list[tuple[str, str]], *, allow_empty: bool = True) -> None:
    """Tag.N.Key / Tag.N.Value as TagResources and CreateImage validate them."""
    if len(pairs) > MAX_TAGS_PER_RESOURCE:
        raise ApiError("NumberExceed.Tags", f"The maximum number of tags is {MAX_TAGS_PER_RESOURCE}.")
    seen: set[str] = set()
    for key, value in pairs:
        if not key or len(key) > 128 or key.lower().startswith(("http://", "https://", *_RESERVED_PREFIXES)):
            raise ApiError(
                "InvalidTagKey.Malformed",
                f"The specified tag key {key!r} is not valid: 1-128 characters, not starting with "
                "aliyun, acs:, http:// or https://.",
            )
        if len(value) > 128 or value.lower().startswith(("http://", "https://")):
            raise ApiError(
                "InvalidTagValue.Malformed",
                f"The specified tag value for {key!r} is not valid: at most 128 characters, "
                "not starting with http:// or https://.",
            )
        if key in seen:
            raise ApiError("Duplicate.TagKey", f"The tag key {key!r} is duplicated.")
        seen.add(key)
    if not pairs and not allow_empty:
        raise ApiError("MissingParameter.Tags", 'The input parameter "Tag" that is mandatory is not supplied.')


def merge_tags(current: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Tags after adding `pairs`; raises QuotaExceed.Tags past 20 user tags (system tags don't count)."""
    merged = dict(current)
    merged.update(pairs)
    user_tags = [k for k in merged if not k.startswith("acs:")]
    if len(user_tags) > MAX_TAGS_PER_RESOURCE:
        raise ApiError(
            "QuotaExceed.Tags",
            f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would make {len(user_tags)}.",
            403,
        )
    return merged


def tag_list(tags: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    return {"Tag": [{"TagKey": k, "TagValue": v} for k, v in tags.items()]}
