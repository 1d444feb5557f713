"""Function Compute 3.0's own API (2023-03-30, ROA) over the functions the local cloud runs.

Two kinds of function live here:
- **deployed**: a (local) ROS stack's functions — `deploy(stack_name, template)` starts a LocalRuntime for
  them with process-isolated instances running the uploaded code (`worker.py`), and a driver thread
  delivers their events as the cloud's clock moves (`bakery local serve --bare` + `bakery deploy`);
- **attached**: a LocalRuntime someone else drives (a `bakery local run/serve` of template.yml in-process),
  registered with `attach(runtime)` so the same API reaches its functions.

The API, as the `alibabacloud-fc20230330` SDK calls it (client.py, 4.8.3):
- `POST /2023-03-30/functions/{name}/invocations[?qualifier=]`, headers `x-fc-invocation-type: Sync|Async`,
  `x-fc-log-type: None|Tail`, `x-fc-async-task-id`. Sync → 200 with the handler's result as the raw body;
  a function error → 200 with `x-fc-error-type: UnhandledInvocationError` and
  `{"errorMessage", "errorType", "stackTrace"}` (FC python error handling doc). Async → 202, queued with
  the function's AsyncInvokeConfig (retries, dead letter); a repeated `x-fc-async-task-id` → 409.
- `GET /2023-03-30/functions/{name}` (GetFunction) and `GET /2023-03-30/functions` (ListFunctions).
- Errors in FC 3.0's shape `{"Code", "Message", "RequestId"}` (FC error codes doc): 404 FunctionNotFound,
  400 InvalidArgument, 400 PathNotSupported for routes not modelled.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from localcloud.errors import ApiError
from localcloud.fc.runtime import LocalRuntime
from localcloud.fc.template.model import FunctionDef, Template
from localcloud.reply import Reply
from localcloud.services.base import register_actions

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud
    from localcloud.wire import RestRequest

_INVOKE = re.compile(r"^/2023-03-30/functions/([^/]+)/invocations/?$")
_FUNCTION = re.compile(r"^/2023-03-30/functions/([^/]+)/?$")
_FUNCTIONS = re.compile(r"^/2023-03-30/functions/?$")
_TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
DRIVER_INTERVAL_S = 0.02
LOG_TAIL_BYTES = 4096
register_actions("fc", ("InvokeFunction", "GetFunction", "ListFunctions"))  # the actions handle_rest answers


class FcService:
    name = "fc"
    product = "FC"
    host = "fcv3.aliyuncs.com"
    actions: dict[str, Any] = {}  # no RPC actions: FC 3.0 is a ROA API (handle_rest)

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.stacks: dict[str, LocalRuntime] = {}  # deployed by ROS, driven here
        self.attached: list[LocalRuntime] = []  # driven by their owner
        self._task_ids: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._driver: threading.Thread | None = None

    # -- hosting -----------------------------------------------------------------------------------

    def deploy(self, stack_name: str, template: Template) -> None:
        """Run `template`'s functions for `stack_name` (replacing an earlier deployment of it).

        Deployed instances are processes that reach the cloud over HTTP, so the cloud must be served
        (`LocalCloudServer` sets `cloud.http_endpoint`). Raises ApiError for what stops FC from running them."""
        from localcloud.fc.pythons import find_python

        endpoint = getattr(self.cloud, "http_endpoint", None)
        if not endpoint:
            raise ApiError("ServiceUnavailable", "the local FC runtime runs deployed functions as processes that reach "
                           "the cloud over HTTP: serve this cloud (LocalCloudServer) before deploying a stack", 503)  # fmt: skip
        versions = {fn.runtime.removeprefix("python") for fn in template.functions.values()}
        pythons = {v: find_python(v) for v in versions}
        missing = sorted(v for v, path in pythons.items() if path is None)
        if missing:
            raise ApiError("InvalidArgument", f"the local FC runtime needs python{', python'.join(missing)} on this "
                           "machine to run this code (it is vendored for that runtime)")  # fmt: skip
        if len(pythons) != 1:
            raise ApiError("InvalidArgument", "the local FC runtime runs one Python version per stack")
        with self._lock:
            self.undeploy(stack_name)
            runtime = LocalRuntime(self.cloud, template, endpoint=endpoint, isolated=True, python=next(iter(pythons.values())),
                                   seed=self.cloud.scenario.seed)  # fmt: skip
            try:
                runtime.start()
            except ValueError as error:
                raise ApiError("InvalidArgument", str(error)) from None
            self.stacks[stack_name] = runtime
            self._ensure_driver()

    def undeploy(self, stack_name: str) -> None:
        with self._lock:
            runtime = self.stacks.pop(stack_name, None)
        if runtime is not None:
            runtime.stop()

    def attach(self, runtime: LocalRuntime) -> None:
        with self._lock:
            self.attached.append(runtime)

    def detach(self, runtime: LocalRuntime) -> None:
        with self._lock:
            if runtime in self.attached:
                self.attached.remove(runtime)

    def close(self) -> None:
        self._stop.set()
        if self._driver is not None:
            self._driver.join(5)
        for name in list(self.stacks):
            self.undeploy(name)

    def _ensure_driver(self) -> None:
        if self._driver is None or not self._driver.is_alive():
            self._stop.clear()
            self._driver = threading.Thread(target=self._drive, name="localcloud-fc", daemon=True)
            self._driver.start()

    def _drive(self) -> None:
        """Deliver deployed stacks' events as they appear (the clock is moved by whoever moves it)."""
        while not self._stop.wait(DRIVER_INTERVAL_S):
            with self._lock:
                runtimes = list(self.stacks.values())
            for runtime in runtimes:
                try:
                    runtime.drain()
                except Exception:  # a runtime bug must not stop every other stack's deliveries
                    import traceback

                    traceback.print_exc()

    def functions(self) -> dict[str, tuple[LocalRuntime, FunctionDef]]:
        with self._lock:
            runtimes = [*self.attached, *self.stacks.values()]
        return {name: (rt, fn) for rt in runtimes for name, fn in rt.template.functions.items()}

    def state(self) -> dict[str, Any]:
        return {"fc_stacks": {name: sorted(rt.template.functions) for name, rt in self.stacks.items()}}

    # -- the API -----------------------------------------------------------------------------------

    def handle_rest(self, request: RestRequest) -> Reply:
        path = request.path
        if (match := _INVOKE.match(path)) and request.method == "POST":
            return self._call("InvokeFunction", lambda: self._invoke(unquote(match.group(1)), request))
        if (match := _FUNCTION.match(path)) and request.method == "GET":
            return self._call("GetFunction", lambda: self._get(unquote(match.group(1)), request))
        if _FUNCTIONS.match(path) and request.method == "GET":
            return self._call("ListFunctions", lambda: self._list(request))
        request.action = "FC"
        raise_path = f"{request.method} {path}"
        return self._error(ApiError("PathNotSupported", f"the local FC API does not serve {raise_path}", 400))

    def _call(self, action: str, answer: Any) -> Reply:
        fault, latency = self.cloud.rest_call(action)
        try:
            if fault is not None:
                raise fault
            reply = answer()
        except ApiError as error:
            self.cloud.rest_error(action, error.code)
            reply = self._error(error)
        reply.latency_ms = latency
        return reply

    def _error(self, error: ApiError) -> Reply:
        headers = {"x-fc-request-id": self._request_id()}
        if error.retry_after_ms is not None:
            headers["x-acs-retry-after"] = str(error.retry_after_ms)
        return Reply(error.status, {"Code": error.code, "Message": error.message, "RequestId": headers["x-fc-request-id"]},
                     headers)  # fmt: skip

    def _request_id(self) -> str:
        with self.cloud.lock:
            return "1-" + self.cloud.ids.uuid().replace("-", "")[:24]

    def _find(self, name: str, request: RestRequest) -> tuple[LocalRuntime, FunctionDef]:
        qualifier = request.query.get("qualifier", "LATEST") or "LATEST"
        found = self.functions().get(name)
        if found is None:
            raise ApiError("FunctionNotFound", f"function '{name}' does not exist", 404)
        if qualifier != "LATEST":
            raise ApiError("VersionNotFound", f"version '{qualifier}' of function '{name}' does not exist (only "
                           "LATEST runs locally)", 404)  # fmt: skip
        return found

    def _invoke(self, name: str, request: RestRequest) -> Reply:
        runtime, fn = self._find(name, request)
        mode = request.headers.get("x-fc-invocation-type", "Sync") or "Sync"
        if mode not in ("Sync", "Async"):
            raise ApiError("InvalidArgument", f"x-fc-invocation-type must be Sync or Async, got {mode!r}", 400)
        if mode == "Async":
            task = request.headers.get("x-fc-async-task-id")
            if task is not None:
                if not _TASK_ID.match(task):
                    raise ApiError("InvalidArgument", f"x-fc-async-task-id {task!r} is not valid", 400)
                with self._lock:
                    if (name, task) in self._task_ids:
                        raise ApiError("ConcurrentUpdateError", f"async task {task!r} already exists", 409)
                    self._task_ids.add((name, task))
            request_id = runtime.enqueue(fn.name, request.body)
            return Reply(202, raw=b"", headers={"x-fc-request-id": request_id}, content_type="text/plain")
        started = time.monotonic()
        delivery = runtime.invoke(fn.name, request.body)
        headers = {
            "x-fc-request-id": delivery.request_id,
            "x-fc-invocation-duration": str(int((time.monotonic() - started) * 1000)),
        }
        if request.headers.get("x-fc-log-type") == "Tail":
            tail = "\n".join(delivery.logs).encode()[-LOG_TAIL_BYTES:]
            headers["x-fc-log-result"] = base64.b64encode(tail).decode()
        if delivery.outcome != "ok":
            headers["x-fc-error-type"] = "UnhandledInvocationError"
            error_type, _, message = (delivery.error or "Error: unknown").partition(": ")
            stack = [line.rstrip("\n") for line in delivery.stack]
            body = {"errorMessage": message, "errorType": delivery.error_type or error_type, "stackTrace": stack}
            return Reply(200, raw=json.dumps(body).encode(), headers=headers)
        result = delivery.result
        raw = b"" if result is None else result.encode() if isinstance(result, str) else json.dumps(result).encode()
        return Reply(200, raw=raw, headers=headers, content_type="application/octet-stream")

    def _function_json(self, fn: FunctionDef) -> dict[str, Any]:
        cloud = self.cloud
        return {
            "functionName": fn.name,
            "functionArn": f"acs:fc:{cloud.region}:{cloud.account_id}:functions/{fn.name}",
            "functionId": fn.logical_id,
            "handler": fn.handler,
            "runtime": fn.runtime,
            "memorySize": fn.memory_mb,
            "timeout": fn.timeout_s,
            "environmentVariables": dict(fn.env),
            "state": "Active",
            "lastUpdateStatus": "Successful",
        }

    def _get(self, name: str, request: RestRequest) -> Reply:
        _, fn = self._find(name, request)
        return Reply(200, self._function_json(fn), {"x-fc-request-id": self._request_id()})

    def _list(self, request: RestRequest) -> Reply:
        prefix = request.query.get("prefix", "")
        functions = [
            self._function_json(fn) for name, (_, fn) in sorted(self.functions().items()) if name.startswith(prefix)
        ]
        return Reply(200, {"functions": functions}, {"x-fc-request-id": self._request_id()})
