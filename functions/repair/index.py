"""FC entry point of bakery-repair (template.yml: Handler index.handler). All logic is in shared/bakery."""

from bakery.entrypoints import repair as handler

__all__ = ["handler"]
