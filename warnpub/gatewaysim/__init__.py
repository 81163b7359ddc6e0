"""A real HTTP SMS gateway simulator for tests, benchmarks and the demo (``warnpub gateway-sim``).

It speaks the default dialect of the ``http_json`` SMS adapter, honours idempotency keys,
posts signed delivery receipts back, and injects faults on request. See docs/channels.md.
"""

from warnpub.gatewaysim.app import create_sim_app
from warnpub.gatewaysim.config import SimConfig, SimConfigError
from warnpub.gatewaysim.state import SimGateway

__all__ = ["SimConfig", "SimConfigError", "SimGateway", "create_sim_app"]
