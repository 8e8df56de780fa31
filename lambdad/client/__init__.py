"""The everyday ``lambdad`` client commands: deploy, invoke, logs, functions, usage.

Each command module has ``register(subparsers)``, which adds its subcommand and sets ``run`` (a
function of the parsed arguments returning the exit status). They talk to the server with botocore,
with the AWS CLI's conventions for the endpoint, region and credentials (see ``session``), and
import botocore only when a command runs, so ``lambdad serve`` does not pay for it.
"""
