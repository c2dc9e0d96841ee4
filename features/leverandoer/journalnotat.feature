# language: da
Egenskab: Lægesystemet eksporterer journalnotater, som kan deles
  Som udvikler hos en leverandør af lægesystemer vil jeg validere de journalnotater, vores system
  eksporterer til deling, før de sendes,
  så jeg selv kan rette fejl i eksporten ud fra en dansk besked, der siger hvad der er galt,
  hvor det sidder, og hvad der var forventet.

  Baggrund:
    Givet at Bente Lænderyg med CPR-nummer 1505629996 er patient hos Lægerne i Kronikergården
    Og at lægen har skrevet et notat fra årskontrollen for hendes lænderygsmerter

  @dokument @krav:SN-GYLDIG @krav:SN-TITEL @krav:SN-NOTAT-TEKST @krav:SN-DATOER @krav:DOK-CPR @krav:DOK-SOR @krav:DOK-REFERENCER
  Scenarie: Et korrekt notat godkendes
    Når eksporten af notatet valideres
    Så godkendes notatet uden fejl
    Og uden advarsler

  Scenarie: Titlen skal bære patientens CPR-nummer
    Givet at eksporten kun skriver "Journalnotat" som titel
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "COMP-TITLE"
    Og fejlen sidder i "Composition.title"
    Og beskeden er på dansk og siger "forventede" og "Journalnotat for 1505629996"

  Scenarie: Et tomt notat afvises
    Givet at notatet kun består af <indhold>
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "NOTES-OBS-NOTE-EMPTY"
    Og fejlen sidder i "Observation.extension.valueAttachment.data"
    Og beskeden er på dansk og siger "notatet har ingen tekst"

    Eksempler:
      | indhold                      |
      | tomme linjer og mellemrum    |
      | et tomt afsnit               |
      | et linjeskift uden tekst     |

  Scenarie: Aktivt indhold i notatet skal afvises
    Givet at teksten er kopieret fra en webside, så notatet indeholder <indhold>
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "NOTES-OBS-NOTE-ACTIVE"
    Og fejlen sidder i "Observation.extension.valueAttachment.data"
    Og beskeden er på dansk og siger "som et delingssystem skal afvise" og "<fundet>"

    Eksempler:
      | indhold                                   | fundet                    |
      | et script, der åbner et pop-op-vindue     | <script>                  |
      | et afsnit, der reagerer på museklik       | onclick                   |
      | et link, der kører javascript             | javascript:               |
      | en indlejret webside                      | <iframe>                  |
      | et billede, der hentes fra en anden server | https://billeder.example/ |

  Scenarie: Et notat kan ikke være opdateret, før det blev oprettet
    Givet at notatet blev oprettet den 20. november 2026 kl. 10:00
    Men at eksporten angiver den seneste opdatering som den 20. november 2026 kl. 09:00
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "NOTES-COMP-DATE-ORDER"
    Og fejlen sidder i "Composition.date"
    Og beskeden er på dansk og siger "ligger før notatets oprettelse" og "2026-11-20T10:00:00+01:00"

  Scenarie: Klinikken skal være angivet med sit SOR-nummer
    Givet at eksporten kun tager klinikkens ydernummer med, ikke dens SOR-nummer
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "ORG-SOR"
    Og fejlen sidder i "Organization.identifier"
    Og beskeden er på dansk og siger "mangler" og "SOR"

  Scenarie: Et forkert CPR-nummer afvises
    Givet at patientens CPR-nummer er tastet forkert som "3213629996" i lægesystemet
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "PAT-CPR-FORMAT"
    Og fejlen sidder i "Patient.identifier.value"
    Og beskeden er på dansk og siger "gyldig dato" og "3213629996"

  Scenarie: Alt hvad notatet henviser til, skal være med i dokumentet
    Givet at eksporten udelader lægens rolle i klinikken, selv om notatet henviser til den
    Når eksporten af notatet valideres
    Så afvises notatet med fejlen "DOC-REF-RESOLVE"
    Og fejlen sidder i "Observation.performer.reference"
    Og beskeden er på dansk og siger "peger ikke på en ressource i dokumentet" og "PractitionerRole/"

  Scenarie: Kommandolinjen godkender et korrekt notat med status 0
    Når notatet gemmes som "arskontrol.json" og valideres med kroniker på dansk
    Så slutter kroniker med status 0
    Og udskriften siger "0 fejl, 0 advarsler" om filen

  Scenarie: Kommandolinjen afviser et notat med forkert titel med status 1
    Givet at eksporten kun skriver "Journalnotat" som titel
    Når notatet gemmes som "arskontrol.json" og valideres med kroniker på dansk
    Så slutter kroniker med status 1
    Og udskriften viser fejlen "COMP-TITLE" med beskeden: forventede "Journalnotat for 1505629996", fandt "Journalnotat"

  Scenarie: En fil, der ikke kan læses, giver en klar besked og status 2
    Givet at eksporten har skrevet <indhold> i filen "<fil>"
    Når filen valideres med kroniker på dansk
    Så slutter kroniker med status 2
    Og udskriften siger "<besked>" om filen
    Men der vises ingen programfejl

    Eksempler:
      | indhold                             | fil             | besked               |
      | notatet som almindelig tekst        | arskontrol.txt  | ugyldig JSON         |
      | et notat, der blev afbrudt halvvejs | arskontrol.json | ugyldig JSON         |
      | en tom fil                          | arskontrol.json | dokumentet er tomt   |
      | notatet som PDF                     | arskontrol.pdf  | ikke gyldig UTF-8    |
