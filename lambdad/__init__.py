"""lambdad: a self-hosted serverless platform, wire-compatible with AWS Lambda."""

__version__ = "0.1.0"
