"""Image families over time, one concern a module: `retention` (what retention keeps, and why: pure), `plan`
(plan and apply retention on the account), `rollback` (rollback and restore), `cost` (what snapshots cost)."""
