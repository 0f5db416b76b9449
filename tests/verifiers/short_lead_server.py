"""server.py with a least `jwt.rotation_lead` of 2 s instead of 60, for tests only.

The least lead is what stock verifiers need, refetching an unknown kid at most every 30 s
(core.signing.keys.MIN_ROTATION_LEAD). tests/test_verifiers.py rotates keys every few seconds with
verifiers told to refetch that often, so it starts vhod through this file; operators have
no setting that lowers the least lead. Usage: as server.py (`python short_lead_server.py
--port N`, or `… keys rotate`).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import core.config.config_sections  # noqa: E402

core.config.config_sections.MIN_ROTATION_LEAD = 2  # what jwt.rotation_lead's check compares with

import server  # noqa: E402

sys.exit(server.main(sys.argv[1:]))
