"""FC entry point of bakery-check (template.yml: Handler index.handler). All logic is in shared/bakery."""

from bakery.entrypoints import check as handler

__all__ = ["handler"]
