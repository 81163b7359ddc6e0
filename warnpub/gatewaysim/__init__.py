"""A real HTTP SMS and voice gateway simulator for tests, benchmarks and the demo
(``warnpub gateway-sim``).

It speaks the default dialects of the ``http_json`` SMS adapter and the ``http_voice`` adapter,
honours idempotency keys, posts signed delivery receipts and call outcomes back, and injects
faults on request. See docs/channels.md.
"""

from warnpub.gatewaysim.app import create_sim_app
from warnpub.gatewaysim.config import SimConfig, SimConfigError
from warnpub.gatewaysim.state import SimGateway

__all__ = ["SimConfig", "SimConfigError", "SimGateway", "create_sim_app"]
