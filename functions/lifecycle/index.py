"""FC entry point of bakery-lifecycle (template.yml: Handler index.handler). All logic is in shared/bakery."""

from bakery.entrypoints import lifecycle as handler

__all__ = ["handler"]
