"""Emulated ROS, Resource Orchestration Service (2019-09-10): Bakery's stack, created, updated and
deleted on the virtual clock the way ROS does it.

ValidateTemplate, CreateStack, UpdateStack, DeleteStack, GetStack, ListStacks, ListStackEvents,
ListStackResources, GetTemplate and PreviewStack. A template is checked with the same loader the
local FC runtime uses (`localcloud.fc.template.load_template_text`), so what ROS would refuse is
refused here with the resource and the property named. Accepted stacks then progress like real ROS:
resources are created one at a time in dependency order (Ref, Fn::GetAtt, Fn::Sub, DependsOn), each
with its stack events; a function's code is fetched from the emulated OSS and unpacked into a work
directory this service owns; when every resource exists the functions are brought up through the
FC service (`cloud.services["fc"].deploy(stack_name, template)`), the outputs are resolved and the
stack is CREATE_COMPLETE. A failure is CREATE_FAILED, then (unless DisableRollback) a rollback that
deletes what was made: CREATE_ROLLBACK_COMPLETE. An update that fails rolls back to the previous
template: ROLLBACK_COMPLETE. Status names are ROS's, not CloudFormation's (GetStack `Status` docs;
terraform-provider-alicloud `resource_alicloud_ros_stack.go` waits on CREATE_ROLLBACK_COMPLETE).

Error codes and where they come from:

| situation | code (HTTP) | source |
|---|---|---|
| duplicate StackName | StackExists (409) "The Stack (name) already exists." | aliyun/aliyun-cli issue #557 (real output) |
| unknown / deleted stack | StackNotFound (404) "The Stack (id) could not be found." | aliyun-openapi-java-sdk core test; terraform treats it as gone |
| update/delete while an action runs | ActionInProgress (409) | ROS CDK CLI and Serverless Devs ROS component handle "ActionInProgress: code: 409" |
| update that changes nothing | NotSupported (400) "Update the completely same stack ..." | UpdateStack DryRun docstring ("a NotSupported error is returned"); ROS CDK CLI matches the message prefix |
| broken template / reference | InvalidTemplate (400) 'Resource [X]: The specified reference "Y" (in Z) is incorrect.' | alibabacloud-ros-tool-iact3 tests (a recorded ValidateTemplate error) |
| property / parameter value refused | StackValidationFailed (400) | alibabacloud-ros-tool-iact3 tests (PreviewStack/estimate mocks); ROS's Heat lineage |
| parameter given but not declared | UnknownUserParameter (400) "The Parameter (X) was not defined in template." | alibabacloud-ros-tool-iact3 `web/routes.py` parses this message |
| required parameter not given | UserParameterMissing (400) "The Parameter (X) was not provided." | ROS's Heat lineage (UNCONFIRMED for ROS) |
| common shapes | MissingParameter, InvalidParameter, MultipleParameter, InvalidIdempotenceParameter (400) | ROS "Common error codes" page |

One module per concern, mixed into RosService (which holds the state and the request helpers): `writes.py`
(ValidateTemplate, CreateStack, UpdateStack, PreviewStack, DeleteStack), `reads.py` (GetStack, List*,
GetTemplate), `engine.py` (the operation on the clock, rollback, the FC service), `code.py` (function code
from OSS, unpacked), `templates.py` (parsing, references, dependency order), `models.py` (state and errors).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localcloud.errors import ApiError
from localcloud.services.base import Service
from localcloud.services.ros.code import StackCodeMixin
from localcloud.services.ros.engine import StackEngineMixin
from localcloud.services.ros.models import (
    _CLIENT_TOKEN,
    MAX_TEMPLATE_BYTES,
    Stack,
    _invalid,
    _missing,
    _missing_one_of,
    _not_found,
)
from localcloud.services.ros.reads import StackReadsMixin
from localcloud.services.ros.templates import _fingerprint
from localcloud.services.ros.writes import StackWritesMixin
from localcloud.wire import Params


class RosService(StackWritesMixin, StackReadsMixin, StackEngineMixin, StackCodeMixin, Service):
    name = "ros"
    product = "ROS"
    host = "ros.aliyuncs.com"

    def __init__(self, cloud: Any) -> None:
        super().__init__(cloud)
        self.stacks: dict[str, Stack] = {}
        self.tokens: dict[tuple[str, str], tuple[str, str]] = {}  # (action, token) → (fingerprint, stack id)
        self.claims: dict[tuple[str, str], str] = {}  # ("role", lower name) / ("bus", name) → stack id
        self._work: Path | None = None
        self._dirs = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove every unpacked code directory (cloud.close() / reset)."""
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def state(self) -> dict[str, Any]:
        return {
            "stacks": [
                {
                    "StackId": s.stack_id,
                    "StackName": s.name,
                    "Status": s.status,
                    "StatusReason": s.status_reason,
                    "Resources": {r.logical_id: r.status for r in s.resources.values()},
                }
                for s in self.stacks.values()
            ]
        }

    def stack_named(self, name: str) -> Stack | None:
        """The live (not deleted) stack called `name`, for tests and tools."""
        return next((s for s in self.stacks.values() if s.name == name and not s.deleted), None)

    # -- request helpers -------------------------------------------------------------------------

    def _region(self, p: Params, *, required: bool = True) -> None:
        region = p.str("RegionId")
        if not region:
            if required:
                raise _missing("RegionId")
            return
        if region != self.cloud.region:
            raise ApiError("InvalidRegionId.NotFound", f"This local cloud serves {self.cloud.region}, not {region}.",
                           404)  # fmt: skip

    def _stack(self, p: Params, *, allow_deleted: bool = False) -> Stack:
        stack_id = p.str("StackId")
        if not stack_id:
            raise _missing("StackId")
        stack = self.stacks.get(stack_id)
        if stack is None or (stack.deleted and not allow_deleted):
            raise _not_found(stack_id)
        return stack

    def _time(self, epoch: float | None) -> str | None:
        """ROS times: UTC, ISO 8601 without the trailing Z (GetStack CreateTime docs)."""
        return None if epoch is None else self.cloud.clock.iso(epoch).rstrip("Z")

    def _template_text(self, p: Params, *, required: bool = True) -> tuple[str, str]:
        """(TemplateBody text, TemplateURL) from TemplateBody or an oss:// TemplateURL."""
        sources = [n for n in ("TemplateBody", "TemplateURL", "TemplateId", "TemplateScratchId") if n in p]
        if len(sources) > 1:
            raise ApiError(
                "MultipleParameter", f"Only one of the input parameters {', '.join(sources)} can be specified."
            )
        if not sources:
            if not required:
                return "", ""
            raise _missing_one_of(("TemplateBody", "TemplateURL", "TemplateId", "TemplateScratchId"))
        source = sources[0]
        if source in ("TemplateId", "TemplateScratchId"):  # no template library here: every id is unknown
            raise ApiError("TemplateNotFound", f"The Template ({p.str(source)}) could not be found.", 404)
        if source == "TemplateBody":
            text = p.required("TemplateBody")
            url = ""
        else:
            url = p.required("TemplateURL")
            text = self._read_template_url(url)
        if len(text.encode("utf-8")) > MAX_TEMPLATE_BYTES:
            raise _invalid(source, f"the template must be 1 to {MAX_TEMPLATE_BYTES} bytes")
        return text, url

    def _read_template_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "oss" or not parts.netloc or not parts.path.strip("/"):
            raise _invalid("TemplateURL", "the local cloud reads templates from oss://bucket/key URLs only")
        region = dict(parse_qsl(parts.query)).get("RegionId")
        if region and region != self.cloud.region:
            raise _invalid("TemplateURL", f"this local cloud serves {self.cloud.region}, not {region}")
        oss = getattr(self.cloud, "oss", None)
        if oss is None:
            raise _invalid("TemplateURL", "OSS is not emulated by this local cloud")
        try:
            data = oss.read_object(parts.netloc, parts.path.lstrip("/"))
        except ApiError as error:
            raise _invalid("TemplateURL", f"{error.code}: {error.message}") from None
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid("TemplateURL", "the template is not UTF-8 text") from None

    def _given_parameters(self, p: Params) -> dict[str, str]:
        given: dict[str, str] = {}
        for index, entry in enumerate(p.struct_list("Parameters"), start=1):
            key, value = entry.get("ParameterKey"), entry.get("ParameterValue")
            if not isinstance(key, str) or not key:
                raise _missing(f"Parameters.{index}.ParameterKey")
            if not isinstance(value, str):
                raise _missing(f"Parameters.{index}.ParameterValue")
            given[key] = value
        return given

    def _tags(self, p: Params, name: str = "Tags") -> list[dict[str, str]]:
        tags = []
        for index, entry in enumerate(p.struct_list(name), start=1):
            key = entry.get("Key")
            if not isinstance(key, str) or not key:
                raise _missing(f"{name}.{index}.Key")
            tags.append({"Key": key, "Value": str(entry.get("Value") or "")})
        if len(tags) > 20:
            raise _invalid(name, "at most 20 tags")
        return tags

    def _idempotent(self, action: str, p: Params) -> str | None:
        """A stack id this ClientToken already made (same request) — or None for a new request."""
        token = p.str("ClientToken")
        if token is None:
            return None
        if not _CLIENT_TOKEN.match(token):
            raise _invalid("ClientToken", "up to 64 letters, digits, hyphens (-) and underscores (_)")
        seen = self.tokens.get((action, token))
        if seen is None:
            return None
        if seen[0] != _fingerprint(p):
            raise ApiError("InvalidIdempotenceParameter", "The specified parameters are different from before.")
        return seen[1]

    def _remember(self, action: str, p: Params, stack_id: str) -> None:
        token = p.str("ClientToken")
        if token:
            self.tokens[(action, token)] = (_fingerprint(p), stack_id)

    def _pseudo(self, stack_name: str, stack_id: str) -> dict[str, str]:
        return {
            "ALIYUN::StackName": stack_name,
            "ALIYUN::StackId": stack_id,
            "ALIYUN::Region": self.cloud.region,
            "ALIYUN::AccountId": self.cloud.account_id,
            "ALIYUN::TenantId": self.cloud.account_id,
        }
