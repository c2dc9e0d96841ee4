"""Rules no StructureDefinition expresses: the IGs' prose, one function per §17 rule id."""
