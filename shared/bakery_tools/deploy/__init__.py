"""`bakery deploy` / `bakery destroy`: template.yml to a running ROS stack, and back. One file per concern:

    settings.py  resolve_settings(layers): [tool.bakery.deploy] in pyproject.toml < --config FILE < flags
    template.py  reading the template: parameters, local validation (what ROS refuses), the resolved view, and the
                 TemplateBody sent to ROS (JSON: YAML anchors and aliases resolved by our parser, never ROS's)
    plan.py      Deployer.plan(): validate, build (or read) the artifacts, then READ the cloud — buses, bucket,
                 objects, the stack and its deployed template — and say what would change (the template diff)
    upload.py    the code: artifacts built with bakery_tools.package (or prebuilt, --artifacts), the code prefix,
                 the bucket, and the uploads (skipped when the object already carries the same sha256)
    buses.py     ensure_buses / delete_buses: ROS has no EventBus type (a local run creates buses the same way)
    stack.py     CreateStack / UpdateStack and following them: ListStackEvents + GetStack to a terminal status
    destroy.py   Deployer.destroy_plan() / destroy(): DeleteStack, follow, delete the buses, report what is left
    clients.py   every SDK client (ROS, OSS, EventBridge, ECS), built in one place from bakery_tools.target settings
    deployer.py  Deployer: the steps above in one object; apply(plan) runs them in order
    cli.py       the commands: parse, call the engine, print (the engine never prints)

Progress reaches the caller through callbacks (`on_step`, `on_event`) carrying data; cli.py prints them.
"""
