"""Cloud adapters: the only modules that import the Alibaba Cloud SDKs.

Each public method makes one or a few API calls through `call()`, which names the RAM action it
needs (the contract test compares those names with template.yml's policy) and maps SDK errors onto
the error taxonomy in bakery.errors.
"""
