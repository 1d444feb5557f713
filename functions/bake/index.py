"""FC entry point of bakery-bake (template.yml: Handler index.handler). All logic is in shared/bakery."""

from bakery.entrypoints import bake as handler

__all__ = ["handler"]
