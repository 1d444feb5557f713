"""The bake, stage by stage, in the order a bake goes through them. Each module is a set of functions over one
`Context` (the settings and the cloud adapters); `bakery.pipeline.Pipeline` is the context with the entry
points the handlers call, and `bakery.state` the states the stages write.

- claim    — the trigger, claiming the instance, the static gate, the guest preflight
- create   — stop-first, CreateImage (CreateFailed retries), bakes from snapshots
- check    — following an image to Available and deciding on its check
- repair   — ACS-ECS-RepairImage: start, follow, the repaired image
- promote  — promotion, releasing the instance, retiring images
- failure  — ending a bake with a reason, the wind-down
- sweep    — the timer: what it queries and resumes

Dependencies run one way: promote ← failure ← create ← claim, check; repair ← failure; sweep uses them all.
"""
