"""pubsys: publish OS images as signed TUF repos, AMIs and SSM parameters."""

__version__ = "0.1.0"
