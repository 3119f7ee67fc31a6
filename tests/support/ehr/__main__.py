"""``python -m tests.support.ehr``: the same as ``python -m fhir_bridge.sandbox``."""

from fhir_bridge.sandbox.__main__ import main

if __name__ == "__main__":
    main()
