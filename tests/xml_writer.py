"""FHIR JSON → FHIR XML for tests: the writer now lives in kroniker.conformance.fhir_xml (the conformance suite
shares documents as XML too); it is still written from the R4 specification, not from kroniker's code."""

from kroniker.conformance.fhir_xml import FHIR_NS, ORDER, to_xml  # noqa: F401  (re-exported for the tests)
