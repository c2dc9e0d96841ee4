# language: da
Egenskab: Lægesystemet eksporterer patientens diagnosekort
  Som udvikler hos en leverandør af lægesystemer vil jeg validere det diagnosekort (diagnoseoversigten),
  vores system eksporterer, før det deles,
  så jeg ved, at lægens diagnoser kommer korrekt frem, og at det, der ikke må deles, bliver hjemme.

  Baggrund:
    Givet at Bente Lænderyg med CPR-nummer 1505629996 er patient hos Lægerne i Kronikergården
    Og at lægen har registreret lændesmerter som forløbsdiagnose på hendes diagnosekort

  @dokument @krav:CL-GYLDIG @krav:CL-TITEL @krav:CL-INGEN-TILLAEGSTEKST @krav:DOK-CPR @krav:DOK-SOR @krav:DOK-REFERENCER
  Scenarie: Et korrekt diagnosekort godkendes
    Når eksporten af diagnosekortet valideres
    Så godkendes diagnosekortet uden fejl
    Og ingen advarsler handler om selve diagnosekortet

  Scenarie: Lægens tillægstekst til en diagnose må ikke deles
    Givet at lægen har skrevet tillægsteksten "Ønsker ikke operation; tal med ægtefællen først" til diagnosen
    Når eksporten af diagnosekortet valideres
    Så godkendes diagnosekortet, men med advarslen "CL-COND-NOTE-SHARED"
    Og advarslen sidder i "Condition.note"
    Og beskeden er på dansk og siger "tillægstekst" og "må ikke deles"

  Scenarie: En advarsel standser ikke eksporten på kommandolinjen
    Givet at lægen har skrevet tillægsteksten "Ønsker ikke operation; tal med ægtefællen først" til diagnosen
    Når diagnosekortet gemmes som "diagnosekort.json" og valideres med kroniker på dansk
    Så slutter kroniker med status 0
    Og udskriften viser advarslen "CL-COND-NOTE-SHARED" med beskeden: Condition.note (tillægstekst) må ikke deles
