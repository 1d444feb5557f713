"""localcloud: a stateful, deterministic emulator of Alibaba Cloud ECS, OOS and EventBridge that the
real SDKs talk to (over loopback HTTP, or in-process through `responses`)."""

from localcloud.cloud import LocalCloud
from localcloud.scenario import Scenario, ScenarioError

__all__ = ["LocalCloud", "Scenario", "ScenarioError"]
