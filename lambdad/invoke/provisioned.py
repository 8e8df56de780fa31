"""The invoke side of provisioned concurrency: environments started ahead, in the pool's idle list.

They are started with AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency and kept idle under the
version's pool key, exempt from reaping, so an invoke of that version (directly or through an alias)
finds one warm and its REPORT line carries no Init Duration.
"""

from __future__ import annotations

from lambdad.invoke.service import InvokeService, fingerprint


class ProvisionedWarmer:
    def __init__(self, invoker: InvokeService) -> None:
        self.invoker = invoker

    async def provision(self, name: str, version: str, count: int) -> int:
        functions = self.invoker.functions
        record = await functions.ready(await functions.load_version(name, version, version))
        if record.config.get("State") != "Active":
            raise RuntimeError(f"the version is {record.config.get('State')}, not Active")
        key = f"{name}:{version}"
        return await self.invoker.pool.prewarm(
            key,
            name,
            fingerprint(record),
            lambda: self.invoker.start_environment(record, "provisioned-concurrency"),
            count,
        )

    def release(self, name: str, version: str) -> None:
        self.invoker.pool.unprovision(f"{name}:{version}")
