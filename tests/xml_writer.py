"""The FHIR XML writer for tests, and the R4 element order transcribed from the specification to hold it to.

The writer is kroniker.validators.fhir_xml (one module: the server and the conformance suite use it too); its
order comes from kroniker's base structures. ORDER below is transcribed by hand from http://hl7.org/fhir/R4
(resource and datatype pages) for the types our documents and MedCom's examples use, so that those structures —
and with them the writer, the reader and the generated XSD — are held to the specification, not to themselves
(tests/test_xml.py).
"""

from kroniker.validators.fhir_xml import FHIR_NS, to_xml  # noqa: F401  (re-exported for the tests)

_RESOURCE = ["id", "meta", "implicitRules", "language"]
_DOMAIN = [*_RESOURCE, "text", "contained", "extension", "modifierExtension"]
_BACKBONE = ["extension", "modifierExtension"]
_ELEMENT = ["extension"]

# type or backbone path → R4 child order; `x[x]` is a choice element.
ORDER: dict[str, list[str]] = {
    "Bundle": [*_RESOURCE, "identifier", "type", "timestamp", "total", "link", "entry", "signature"],
    "Bundle.entry": [*_BACKBONE, "link", "fullUrl", "resource", "search", "request", "response"],
    "Composition": [*_DOMAIN, "identifier", "status", "type", "category", "subject", "encounter", "date", "author",
                    "title", "confidentiality", "attester", "custodian", "relatesTo", "event", "section"],
    "Composition.attester": [*_BACKBONE, "mode", "time", "party"],
    "Composition.event": [*_BACKBONE, "code", "period", "detail"],
    "Composition.section": [*_BACKBONE, "title", "code", "author", "focus", "text", "mode", "orderedBy", "entry",
                            "emptyReason", "section"],
    "Condition": [*_DOMAIN, "identifier", "clinicalStatus", "verificationStatus", "category", "severity", "code",
                  "bodySite", "subject", "encounter", "onset[x]", "abatement[x]", "recordedDate", "recorder",
                  "asserter", "stage", "evidence", "note"],
    "DocumentReference": [*_DOMAIN, "masterIdentifier", "identifier", "status", "docStatus", "type", "category",
                          "subject", "date", "author", "authenticator", "custodian", "relatesTo", "description",
                          "securityLabel", "content", "context"],
    "DocumentReference.content": [*_BACKBONE, "attachment", "format"],
    "DocumentReference.context": [*_BACKBONE, "encounter", "event", "period", "facilityType", "practiceSetting",
                                  "sourcePatientInfo", "related"],
    "Observation": [*_DOMAIN, "identifier", "basedOn", "partOf", "status", "category", "code", "subject", "focus",
                    "encounter", "effective[x]", "issued", "performer", "value[x]", "dataAbsentReason",
                    "interpretation", "note", "bodySite", "method", "specimen", "device", "referenceRange",
                    "hasMember", "derivedFrom", "component"],
    "Organization": [*_DOMAIN, "identifier", "active", "type", "name", "alias", "telecom", "address", "partOf",
                     "contact", "endpoint"],
    "Patient": [*_DOMAIN, "identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]", "address",
                "maritalStatus", "multipleBirth[x]", "photo", "contact", "communication", "generalPractitioner",
                "managingOrganization", "link"],
    "Practitioner": [*_DOMAIN, "identifier", "active", "name", "telecom", "address", "gender", "birthDate", "photo",
                     "qualification", "communication"],
    "PractitionerRole": [*_DOMAIN, "identifier", "active", "period", "practitioner", "organization", "code",
                         "specialty", "location", "healthcareService", "telecom", "availableTime", "notAvailable",
                         "availabilityExceptions", "endpoint"],
    "Element": _ELEMENT,
    "Annotation": [*_ELEMENT, "author[x]", "time", "text"],
    "Attachment": [*_ELEMENT, "contentType", "language", "data", "url", "size", "hash", "title", "creation"],
    "CodeableConcept": [*_ELEMENT, "coding", "text"],
    "Coding": [*_ELEMENT, "system", "version", "code", "display", "userSelected"],
    "Extension": [*_ELEMENT, "value[x]"],
    "HumanName": [*_ELEMENT, "use", "text", "family", "given", "prefix", "suffix", "period"],
    "Identifier": [*_ELEMENT, "use", "type", "system", "value", "period", "assigner"],
    "Meta": [*_ELEMENT, "versionId", "lastUpdated", "source", "profile", "security", "tag"],
    "Narrative": [*_ELEMENT, "status", "div"],
    "Period": [*_ELEMENT, "start", "end"],
    "Reference": [*_ELEMENT, "reference", "type", "identifier", "display"],
}
