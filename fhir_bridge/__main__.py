"""``python -m fhir_bridge`` is the same as the ``fhir-bridge`` command."""

import sys

from fhir_bridge.cli import main

sys.exit(main())
