"""Helpers to point the real SDK clients at a local cloud, over either transport.

with running(cloud, transport="http") as env:
    env.ecs.describe_instances(DescribeInstancesRequest(region_id=env.region))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from localcloud.cloud import LocalCloud

TRANSPORTS = ("inprocess", "http")


def sdk_config(endpoint: str, region: str, access_key_id: str = "LTAIlocalcloud", secret: str = "localcloud") -> Any:
    from alibabacloud_tea_openapi.utils_models import Config

    return Config(
        access_key_id=access_key_id,
        access_key_secret=secret,
        region_id=region,
        endpoint=endpoint,
        protocol="http",
    )


def oss_client(endpoint: str, region: str, access_key_id: str = "LTAIlocalcloud", secret: str = "localcloud") -> Any:
    """An alibabacloud-oss-v2 client for a local cloud at `endpoint` (host:port, no scheme).

    Configured as for any custom endpoint: static credentials, the region (V4 signing), `http://` endpoint.
    Addressing is the SDK's own choice: an IP endpoint (the HTTP server) is path-style, a host name (the
    in-process `cloudN.localcloud.internal`) virtual-hosted; the local cloud answers both.
    """
    import alibabacloud_oss_v2 as oss

    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(access_key_id, secret)
    config.region = region
    config.endpoint = f"http://{endpoint}"
    return oss.Client(config)


@dataclass
class CloudEnv:
    """A local cloud plus real SDK clients wired to it.

    `oss` and `ros` are made on first use: most callers never touch them, and importing their SDKs took a
    local run's setup a quarter of a second. Either may still be given as a client, as before."""

    cloud: LocalCloud
    endpoint: str
    transport: str
    ecs: Any
    oos: Any
    eventbridge: Any
    oss_client: Any = None  # alibabacloud_oss_v2.Client, or made by `oss`
    ros_client: Any = None  # alibabacloud_ros20190910 Client, or made by `ros`

    @property
    def region(self) -> str:
        return self.cloud.region

    @property
    def oss(self) -> Any:
        if self.oss_client is None:
            self.oss_client = oss_client(self.endpoint, self.cloud.region)
        return self.oss_client

    @property
    def ros(self) -> Any:
        if self.ros_client is None:
            from alibabacloud_ros20190910.client import Client as RosClient

            self.ros_client = RosClient(sdk_config(self.endpoint, self.cloud.region))
        return self.ros_client


@contextmanager
def running(cloud: LocalCloud, transport: str = "inprocess") -> Iterator[CloudEnv]:
    """Serve `cloud` over `transport` and yield SDK clients configured for it."""
    from alibabacloud_ecs20140526.client import Client as EcsClient
    from alibabacloud_eventbridge20200401.client import Client as EventBridgeClient
    from alibabacloud_oos20190601.client import Client as OosClient

    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    if transport == "http":
        from localcloud.server import LocalCloudServer

        server = LocalCloudServer(cloud).start()
        try:
            config = sdk_config(server.endpoint, cloud.region)
            yield CloudEnv(cloud, server.endpoint, transport, EcsClient(config), OosClient(config),
                           EventBridgeClient(config))  # fmt: skip
        finally:
            server.stop()
    else:
        from localcloud.mock import mock_cloud

        with mock_cloud(cloud) as endpoint:
            config = sdk_config(endpoint, cloud.region)
            yield CloudEnv(cloud, endpoint, transport, EcsClient(config), OosClient(config), EventBridgeClient(config))
