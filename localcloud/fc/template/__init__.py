"""Load a ROS template (template.yml) into the plain wiring the local FC runtime runs — refusing what ROS refuses.

The template is the single source of truth: the same rules, triggers, timers and async configs that ROS
deploys are what `LocalRuntime` wires up, and a template loads here only if ROS would accept it. Every
resource is checked against Alibaba's published ROS resource definitions (`localcloud/fc/ros_schema.json`,
extracted from the pinned `ros-cdk-*` packages): unknown type, unknown or misspelt property, missing
required property, value outside its allowed values, range, length or pattern, scalar where a list is
required, `Fn::GetAtt` of an attribute the type lacks, `Ref` to nothing, parameter defaults and given
values that break their own Type/AllowedValues/AllowedPattern/length/value bounds. Messages name the
resource and the property.

On top of what ROS accepts, the local runtime runs a subset: `ALIYUN::RAM::Role`, `ALIYUN::EventBridge::Rule`,
`ALIYUN::FC3::Function`, `ALIYUN::FC3::Trigger` (eventbridge on the default bus, timer) and
`ALIYUN::FC3::AsyncInvokeConfig`, with the intrinsics `Ref`, `Fn::Sub` and `Fn::GetAtt`. A valid ROS
construct outside that subset is refused as "not run by the local runtime", never silently ignored.

ROS has no EventBus resource type (ros-cdk-eventbridge 1.15.0 defines Rule, Connection and ApiDestination
only), so custom buses are not resources: `Template.buses` lists the custom buses the template *uses*
(rules' EventBusName, async OnFailure destinations) — what the deploy step creates before the stack, and
what a local runtime requires to exist when it starts.

A function's code is found by a `code_locator(logical_id, code) -> Path | None`; the default reads
`Metadata.LocalCodeUri` (relative to the template file; ROS ignores resource Metadata), the local ROS
unpacks the `Code.OssBucketName`/`OssObjectName` zip, and `skip_code` validates without looking at code.

`model.py` is what a template becomes; `loader.py` checks its structure and resolves it, with the mixins
`parameters.py` (Parameters), `intrinsics.py` (Ref, Fn::Sub, Fn::GetAtt) and `wiring.py` (each resource the
local runtime runs, turned into functions, routes, timers and roles).
"""

from __future__ import annotations

from localcloud.fc.template.loader import load_template, load_template_text
from localcloud.fc.template.model import (
    DEFAULT_BUS,
    PYTHON_RUNTIMES,
    RESOURCE_TYPES,
    CodeLocator,
    FunctionDef,
    RoleDef,
    Route,
    Template,
    TemplateError,
    TimerDef,
    skip_code,
)

__all__ = [
    "DEFAULT_BUS",
    "PYTHON_RUNTIMES",
    "RESOURCE_TYPES",
    "CodeLocator",
    "FunctionDef",
    "RoleDef",
    "Route",
    "Template",
    "TemplateError",
    "TimerDef",
    "load_template",
    "load_template_text",
    "skip_code",
]
