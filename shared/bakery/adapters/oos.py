"""OOS (2019-06-01) through the real SDK: the public template ACS-ECS-RepairImage."""

from __future__ import annotations

import json
from typing import Any

from alibabacloud_oos20190601 import models as m

from bakery.adapters.sdk import call
from bakery.clients import client, waiter
from bakery.config import Settings
from bakery.model import Execution

REPAIR_TEMPLATE = "ACS-ECS-RepairImage"


class Oos:
    def __init__(self, settings: Settings) -> None:
        self.region = settings.region
        self._client = client("oos", settings)
        self._wait = waiter(settings)

    def start_repair(self, parameters: dict[str, Any], *, client_token: str, tags: dict[str, str]) -> Execution:
        body = call("oos", "StartExecution", self._client.start_execution, m.StartExecutionRequest(
            region_id=self.region, template_name=REPAIR_TEMPLATE, parameters=json.dumps(parameters), mode="Automatic",
            client_token=client_token, tags=tags,
        ), wait=self._wait).body  # fmt: skip
        return _execution(body.execution)

    def execution(self, execution_id: str) -> Execution | None:
        """OOS has no GetExecution: ListExecutions filtered by id is the way (alibaba-apis.md §3.2)."""
        body = call("oos", "ListExecutions", self._client.list_executions,
                    m.ListExecutionsRequest(region_id=self.region, execution_id=execution_id), wait=self._wait).body  # fmt: skip
        return _execution(body.executions[0]) if body.executions else None


def _execution(e: Any) -> Execution:
    try:
        outputs = json.loads(e.outputs) if isinstance(e.outputs, str) and e.outputs else (e.outputs or {})
    except json.JSONDecodeError:
        outputs = {}
    return Execution(
        e.execution_id, e.status or "", outputs if isinstance(outputs, dict) else {}, e.status_message or ""
    )


# What ACS-ECS-RepairImage calls with the caller's own permissions (it declares no RamRole).
REPAIR_TEMPLATE_ACTIONS = (
    "ecs:DescribeImages", "ecs:RunInstances", "ecs:DescribeInstances", "ecs:DescribeDisks", "ecs:RunCommand",
    "ecs:InvokeCommand", "ecs:DescribeInvocations", "ecs:DescribeInvocationResults", "ecs:RebootInstance",
    "ecs:CreateSnapshot", "ecs:CreateImage", "ecs:DeleteSnapshot", "ecs:DeleteInstance",
)  # fmt: skip
