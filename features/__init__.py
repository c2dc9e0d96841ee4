"""The Danish feature files (Gherkin), installed as data for kroniker.conformance."""
