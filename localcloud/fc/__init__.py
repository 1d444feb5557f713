"""The local Function Compute runtime: template.yml's functions, buses, rules and timers, run in-process
against a LocalCloud on its virtual clock.

    template = load_template("template.yml", {"CodeBucket": "x", ...}, region=cloud.region, account_id=cloud.account_id)
    with running(cloud, "inprocess") as env:
        runtime = LocalRuntime(cloud, template, endpoint=env.endpoint).start()
        ...                       # act through the SDK (TagResources, PutEvents)
        runtime.run_until_idle()  # deliver, retry, fire timers until nothing is left to do
        print(runtime.trace())
"""

from localcloud.fc.context import Credentials, FCContext, invocation_env, make_context
from localcloud.fc.deliveries import DeadLetter, Delivery
from localcloud.fc.runtime import LocalRuntime
from localcloud.fc.schedule import Schedule, ScheduleError, parse_schedule
from localcloud.fc.template import FunctionDef, RoleDef, Route, Template, TemplateError, TimerDef, load_template

__all__ = [
    "Credentials",
    "DeadLetter",
    "Delivery",
    "FCContext",
    "FunctionDef",
    "LocalRuntime",
    "RoleDef",
    "Route",
    "Schedule",
    "ScheduleError",
    "Template",
    "TemplateError",
    "TimerDef",
    "invocation_env",
    "load_template",
    "make_context",
    "parse_schedule",
]
