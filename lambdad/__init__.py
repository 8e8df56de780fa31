"""lambdad: a self-hosted serverless platform, wire-compatible with AWS Lambda."""

__version__ = "0.1.0"

from lambdad import compiled as _compiled

_compiled.install()  # before anything imports a hot-path module
