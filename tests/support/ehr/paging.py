"""Moved to :mod:`fhir_bridge.sandbox`; this alias keeps older test imports working."""

import sys

from fhir_bridge.sandbox import paging as _moved

sys.modules[__name__] = _moved
