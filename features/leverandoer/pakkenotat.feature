# language: da
Egenskab: Lægesystemet eksporterer pakkenotater med "Mål og planer"
  Som udvikler hos en leverandør af lægesystemer vil jeg validere de notater fra lænderygpakken, vores system
  eksporterer til deling, før de sendes,
  så jeg ved, at afsnittet "Mål og planer" kommer med, og får en dansk besked om, hvad der mangler, når det ikke gør.

  Baggrund:
    Givet at Bente Lænderyg med CPR-nummer 1505629996 er patient hos Lægerne i Kronikergården
    Og at lægen har skrevet et pakkenotat fra årskontrollen med mål, plan, næste kontrol og triagefarve

  @dokument @krav:PK-NOTAT-PROFIL
  Scenarie: Et pakkenotat bygget som kronikers reference godkendes
    Når eksporten af pakkenotatet valideres
    Så godkendes pakkenotatet uden fejl
    Og uden advarsler

  @krav:PK-NOTAT-PROFIL
  Scenarie: Et pakkenotat uden "Mål og planer" afvises
    Givet at eksporten kun tager lægens fritekst med i notatet og udelader afsnittet "Mål og planer"
    Når eksporten af pakkenotatet valideres
    Så afvises pakkenotatet med fejlen "PACKAGE-NOTE-SECTION"
    Og fejlen sidder i "Observation.extension.valueAttachment.data"
    Og beskeden er på dansk og siger "mangler afsnittet" og "Mål og planer"

  @krav:PK-NOTAT-PROFIL
  Scenarie: Et afsnit "Mål og planer" uden en af sine linjer afvises
    Givet at eksporten udelader linjen "<linje>" i afsnittet "Mål og planer"
    Når eksporten af pakkenotatet valideres
    Så afvises pakkenotatet med fejlen "PACKAGE-NOTE-FIELD"
    Og fejlen sidder i "Observation.extension.valueAttachment.data"
    Og beskeden er på dansk og siger "mangler linjen" og "<linje>"

    Eksempler:
      | linje           |
      | Mål:            |
      | Plan:           |
      | Næste kontrol:  |
      | Triagefarve:    |
