"""Launch templates: CreateLaunchTemplate, CreateLaunchTemplateVersion, DescribeLaunchTemplates,
DescribeLaunchTemplateVersions.

What matters for image lifecycles: a template version pins an ImageId forever, and nothing on the image
side says so (DeleteImage does not refuse an image a template uses, `Usage` counts instances only) — the
#1 complaint about cleanup tools (peers.md §2.13-2.15). Templates are stored configuration: the image
they name is not checked when the version is made (it may be deleted later anyway).

Error codes from the ECS API docs: LaunchTemplateName.Duplicated (403), LaunchTemplateLimitExceed (403,
30 per region), LaunchTemplateVersionLimitExceed (403, 30 versions), InvalidLaunchTemplate.NotFound (404).
UNCONFIRMED: the malformed-name code (InvalidLaunchTemplateName.Malformed here) and the order
DescribeLaunchTemplateVersions lists versions in (newest first here).
Not processed: ResourceGroupId filters, ClientToken, NetworkInterface details, the
DeleteLaunchTemplate/ModifyLaunchTemplateDefaultVersion family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, missing_parameter
from localcloud.services.base import api
from localcloud.services.ecs.instances import _dry_run, _tags_match
from localcloud.services.ecs.validation import _NAME, check_tags, tag_list
from localcloud.wire import Params, paginate

if TYPE_CHECKING:
    from localcloud.scenario import LaunchTemplateSpec
    from localcloud.services.ecs import EcsService

MAX_TEMPLATES = 30  # per region (CreateLaunchTemplate docs: LaunchTemplateLimitExceed)
MAX_VERSIONS = 30  # per template (CreateLaunchTemplateVersion docs: LaunchTemplateVersionLimitExceed)
_PAGE_MAX = 50

# Request params copied into LaunchTemplateData as they are (names as both the request and the response use them).
_SCALAR_FIELDS = (
    "ImageId", "ImageOwnerAlias", "InstanceType", "InstanceName", "HostName", "Description", "SecurityGroupId",
    "VpcId", "VSwitchId", "ZoneId", "InternetChargeType", "InstanceChargeType", "IoOptimized", "NetworkType",
    "KeyPairName", "RamRoleName", "UserData", "SpotStrategy", "ResourceGroupId", "DeploymentSetId",
    "PrivateIpAddress", "SecurityEnhancementStrategy", "AutoReleaseTime", "CreditSpecification", "PeriodUnit",
    "HttpEndpoint", "HttpTokens",
)  # fmt: skip
_INT_FIELDS = ("InternetMaxBandwidthIn", "InternetMaxBandwidthOut", "Period", "AutoRenewPeriod", "SpotDuration",
               "Ipv6AddressCount", "HttpPutResponseHopLimit")  # fmt: skip
_BOOL_FIELDS = ("AutoRenew", "DeletionProtection", "PasswordInherit", "EnableVmOsConfig")
_SYSTEM_DISK_FIELDS = ("Category", "Size", "DiskName", "Description", "DeleteWithInstance", "PerformanceLevel",
                       "Iops", "ProvisionedIops", "BurstingEnabled", "Encrypted", "KMSKeyId", "AutoSnapshotPolicyId")  # fmt: skip
_DATA_DISK_FIELDS = ("Category", "Size", "DiskName", "Description", "DeleteWithInstance", "PerformanceLevel",
                     "ProvisionedIops", "BurstingEnabled", "Encrypted", "KMSKeyId", "AutoSnapshotPolicyId",
                     "Device", "SnapshotId")  # fmt: skip
_INT_DISK_FIELDS = {"Size", "Iops", "ProvisionedIops"}
_BOOL_DISK_FIELDS = {"DeleteWithInstance", "BurstingEnabled"}


@dataclass
class LaunchTemplateVersion:
    number: int
    data: dict[str, Any]  # LaunchTemplateData as the API renders it
    description: str
    created_at: str
    created_by: str


@dataclass
class LaunchTemplate:
    template_id: str
    name: str
    created_at: str
    created_by: str
    default_version: int = 1
    versions: list[LaunchTemplateVersion] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    modified_at: str = ""

    @property
    def latest_version(self) -> int:
        return max(v.number for v in self.versions)

    def to_api(self) -> dict[str, Any]:
        return {
            "LaunchTemplateId": self.template_id,
            "LaunchTemplateName": self.name,
            "DefaultVersionNumber": self.default_version,
            "LatestVersionNumber": self.latest_version,
            "CreateTime": self.created_at,
            "ModifiedTime": self.modified_at or self.created_at,
            "CreatedBy": self.created_by,
            "ResourceGroupId": "",
            "Tags": tag_list(self.tags),
        }

    def version_to_api(self, version: LaunchTemplateVersion, detail: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "LaunchTemplateId": self.template_id,
            "LaunchTemplateName": self.name,
            "VersionNumber": version.number,
            "DefaultVersion": version.number == self.default_version,
            "VersionDescription": version.description,
            "CreateTime": version.created_at,
            "ModifiedTime": version.created_at,
            "CreatedBy": version.created_by,
        }
        if detail:
            body["LaunchTemplateData"] = version.data
        return body


def template_data(
    *, image_id: str = "", instance_type: str = "", fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """LaunchTemplateData with every container present (the SDK yields None for a missing one)."""
    data: dict[str, Any] = {
        "ImageId": image_id,
        "ImageOwnerAlias": "",
        "InstanceType": instance_type,
        "InstanceName": "",
        "HostName": "",
        "Description": "",
        "SecurityGroupId": "",
        "VpcId": "",
        "VSwitchId": "",
        "ZoneId": "",
        "InternetChargeType": "",
        "InternetMaxBandwidthIn": 0,
        "InternetMaxBandwidthOut": 0,
        "InstanceChargeType": "PostPaid",
        "IoOptimized": "optimized",
        "NetworkType": "vpc",
        "KeyPairName": "",
        "RamRoleName": "",
        "UserData": "",
        "SpotStrategy": "NoSpot",
        "ResourceGroupId": "",
        "SystemDisk": {"Category": "", "Size": 0, "DiskName": "", "Description": "", "DeleteWithInstance": True},
        "DataDisks": {"DataDisk": []},
        "NetworkInterfaces": {"NetworkInterface": []},
        "SecurityGroupIds": {"SecurityGroupId": []},
        "Tags": {"InstanceTag": []},
    }
    data.update(fields or {})
    return data


def _data_from_params(p: Params) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in _SCALAR_FIELDS:
        value = p.str(name)
        if value is not None:
            fields[name] = value
    for name in _INT_FIELDS:
        value = p.int(name)
        if value is not None:
            fields[name] = value
    for name in _BOOL_FIELDS:
        if name in p:
            fields[name] = p.bool(name)
    system = p.struct("SystemDisk")
    if system:
        fields["SystemDisk"] = {
            **template_data()["SystemDisk"],
            **_disk(system, _SYSTEM_DISK_FIELDS, "SystemDisk"),
        }
    data_disks = p.struct_list("DataDisk")
    if data_disks:
        fields["DataDisks"] = {
            "DataDisk": [_disk(d, _DATA_DISK_FIELDS, f"DataDisk.{i}") for i, d in enumerate(data_disks, start=1)]
        }
    groups = p.list("SecurityGroupIds")
    if groups:
        fields["SecurityGroupIds"] = {"SecurityGroupId": groups}
    instance_tags = p.tags("Tag")
    if instance_tags:
        check_tags(instance_tags)
        fields["Tags"] = {"InstanceTag": [{"Key": k, "Value": v} for k, v in instance_tags]}
    description = p.str("Description")
    if description is not None and (len(description) > 256 or description.lower().startswith(("http://", "https://"))):
        raise ApiError(
            "InvalidDescription.Malformed",
            "The specified description is wrongly formed: at most 256 characters, not starting with http(s)://.",
        )
    return fields


def _disk(raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    disk: dict[str, Any] = {}
    for name in allowed:
        value = raw.get(name)
        if value is None or value == "":
            continue
        if name in _INT_DISK_FIELDS:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ApiError("InvalidParameter", f'The specified parameter "{where}.{name}" is not valid.') from None
        elif name in _BOOL_DISK_FIELDS:
            value = str(value).lower() == "true"
        disk[name] = value
    return disk


class LaunchTemplatesMixin:
    launch_templates: dict[str, LaunchTemplate]

    # -- scenario --------------------------------------------------------------------------------

    def load_launch_templates(self: EcsService, specs: list[LaunchTemplateSpec]) -> None:
        """Templates that exist when the scenario starts; every version's image must exist then."""
        from localcloud.scenario import ScenarioError

        now = self.cloud.clock.iso()
        for spec in specs:
            template = LaunchTemplate(spec.id, spec.name, now, self.cloud.account_id, spec.default_version,
                                      tags=dict(spec.tags))  # fmt: skip
            for number, version in enumerate(spec.versions, start=1):
                if version.image_id and version.image_id not in self.images:
                    raise ScenarioError(
                        f"launch template {spec.id}: versions[{number - 1}].image_id {version.image_id!r} is neither "
                        "a public image nor one of the scenario's images"
                    )
                data = template_data(image_id=version.image_id, instance_type=version.instance_type)
                template.versions.append(
                    LaunchTemplateVersion(number, data, version.description or "", now, self.cloud.account_id)
                )
            self.launch_templates[spec.id] = template

    # -- helpers ---------------------------------------------------------------------------------

    def _launch_template(self: EcsService, p: Params) -> LaunchTemplate:
        template_id = p.str("LaunchTemplateId")
        name = p.str("LaunchTemplateName")
        if not template_id and not name:
            raise missing_parameter("LaunchTemplateId")
        for template in self.launch_templates.values():
            if (template_id and template.template_id == template_id) or (not template_id and template.name == name):
                return template
        raise ApiError(
            "InvalidLaunchTemplate.NotFound",
            f"The specified LaunchTemplateId {template_id or ''!r} LaunchTemplateName {name or ''!r} is not found.",
            404,
        )

    # -- API -------------------------------------------------------------------------------------

    @api("CreateLaunchTemplate", write=True)
    def create_launch_template(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        name = p.required("LaunchTemplateName")
        if not _NAME.match(name) or name.lower().startswith(("http://", "https://")):
            raise ApiError(
                "InvalidLaunchTemplateName.Malformed",
                "The specified LaunchTemplateName is wrongly formed: 2-128 characters, starting with a letter; "
                "letters, digits, ':', '_', '-' and '.'; not starting with http:// or https://.",
            )
        if any(t.name == name for t in self.launch_templates.values()):
            raise ApiError(
                "LaunchTemplateName.Duplicated", f"The specified LaunchTemplateName {name!r} already exist.", 403
            )
        if len(self.launch_templates) >= MAX_TEMPLATES:
            raise ApiError("LaunchTemplateLimitExceed", "The maximum number of templates is exceeded.", 403)
        template_tags = p.tags("TemplateTag")
        check_tags(template_tags)
        version_description = p.str("VersionDescription", "") or ""
        fields = _data_from_params(p)
        if p.bool("DryRun"):
            raise _dry_run()
        now = self.cloud.clock.iso()
        template = LaunchTemplate(self.cloud.ids.resource("lt"), name, now, self.cloud.account_id, 1,
                                  tags=dict(template_tags))  # fmt: skip
        template.versions.append(LaunchTemplateVersion(1, template_data(fields=fields), version_description, now,
                                                       self.cloud.account_id))  # fmt: skip
        self.launch_templates[template.template_id] = template
        return {"LaunchTemplateId": template.template_id, "LaunchTemplateVersionNumber": 1}

    @api("CreateLaunchTemplateVersion", write=True)
    def create_launch_template_version(self: EcsService, p: Params) -> dict[str, Any]:
        """A new *latest* version; the default version does not move (ModifyLaunchTemplateDefaultVersion does)."""
        self._region(p)
        template = self._launch_template(p)
        if len(template.versions) >= MAX_VERSIONS:
            raise ApiError(
                "LaunchTemplateVersionLimitExceed",
                f"Launch template {template.template_id} already has {MAX_VERSIONS} versions, the maximum.",
                403,
            )
        fields = _data_from_params(p)
        if p.bool("DryRun"):
            raise _dry_run()
        now = self.cloud.clock.iso()
        number = template.latest_version + 1
        template.versions.append(LaunchTemplateVersion(number, template_data(fields=fields),
                                                       p.str("VersionDescription", "") or "", now, self.cloud.account_id))  # fmt: skip
        template.modified_at = now
        return {"LaunchTemplateId": template.template_id, "LaunchTemplateVersionNumber": number}

    @api("DescribeLaunchTemplates")
    def describe_launch_templates(self: EcsService, p: Params) -> dict[str, Any]:
        """Filters: LaunchTemplateId.N, LaunchTemplateName.N (up to 100 each), TemplateTag.N."""
        self._region(p)
        ids, names = p.list("LaunchTemplateId"), p.list("LaunchTemplateName")
        if len(ids) > 100 or len(names) > 100:
            raise ApiError(
                "InvalidParameter", "At most 100 LaunchTemplateId or LaunchTemplateName values may be given."
            )
        wanted_tags = p.tags("TemplateTag")
        selected = [
            t
            for t in self.launch_templates.values()
            if (not ids or t.template_id in ids) and (not names or t.name in names) and _tags_match(t.tags, wanted_tags)
        ]
        number = p.int("PageNumber", 1, low=1) or 1
        size = p.int("PageSize", 10, low=1, high=_PAGE_MAX) or 10
        return {
            "TotalCount": len(selected),
            "PageNumber": number,
            "PageSize": size,
            "LaunchTemplateSets": {"LaunchTemplateSet": [t.to_api() for t in paginate(selected, number, size)]},
        }

    @api("DescribeLaunchTemplateVersions")
    def describe_launch_template_versions(self: EcsService, p: Params) -> dict[str, Any]:
        """One template (LaunchTemplateId or LaunchTemplateName); filters LaunchTemplateVersion.N,
        MinVersion/MaxVersion, DefaultVersion; DetailFlag=false leaves LaunchTemplateData out. Newest first."""
        self._region(p)
        template = self._launch_template(p)
        numbers = []
        for raw in p.list("LaunchTemplateVersion"):
            try:
                numbers.append(int(raw))
            except ValueError:
                raise ApiError(
                    "InvalidParameter", f'The specified parameter "LaunchTemplateVersion" {raw!r} is not valid.'
                ) from None
        low, high = p.int("MinVersion", None, low=1), p.int("MaxVersion", None, low=1)
        default_only = p.bool("DefaultVersion")
        detail = p.bool("DetailFlag", True)
        selected = [
            v
            for v in sorted(template.versions, key=lambda v: v.number, reverse=True)
            if (not numbers or v.number in numbers)
            and (low is None or v.number >= low)
            and (high is None or v.number <= high)
            and (not default_only or v.number == template.default_version)
        ]
        number = p.int("PageNumber", 1, low=1) or 1
        size = p.int("PageSize", 10, low=1, high=_PAGE_MAX) or 10
        return {
            "TotalCount": len(selected),
            "PageNumber": number,
            "PageSize": size,
            "LaunchTemplateVersionSets": {
                "LaunchTemplateVersionSet": [
                    template.version_to_api(v, detail) for v in paginate(selected, number, size)
                ]
            },
        }
