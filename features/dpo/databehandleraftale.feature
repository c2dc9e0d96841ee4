# language: da
Egenskab: Ingen databehandler uden en databehandleraftale
  Som databeskyttelsesrådgiver for kronikerpakkens digitale løsning vil jeg opdage enhver leverandør,
  der behandler patientoplysninger for en klinik uden en databehandleraftale,
  så ingen klinik overlader helbredsoplysninger til en leverandør uden skriftlige garantier.

  Baggrund:
    Givet at skabelonen for lænderygpakken er lagt ind i fortegnelsen
    Og at Lægerne i Kronikergården med SOR-nummer 123456789012 har tilsluttet sig skabelonen
    Og at klinikken har underskrevet skabelonens standardaftaler den 1. november 2026

  Scenarie: Klinikken er i orden, når den har tilsluttet sig
    Når jeg kontrollerer fortegnelserne den 1. december 2026
    Så er der ingen fejl i skabelonen
    Og ingen fejl hos Lægerne i Kronikergården

  Scenarie: En IT-supportleverandør uden aftale bliver fanget
    Givet at Lægerne i Kronikergården lader "Klinik-IT ApS" yde fjernsupport på lægesystemet
    Men at klinikken ikke har indgået en databehandleraftale med "Klinik-IT ApS"
    Når jeg kontrollerer fortegnelserne den 1. december 2026
    Så har Lægerne i Kronikergården fejlen "DPIA-28-3-AGREEMENT-MISSING"
    Og beskeden er på dansk og nævner "Klinik-IT ApS" og "art. 28, stk. 3"
    Og skabelonen har ikke fejlen

  Scenarie: Når aftalen er underskrevet, er fejlen væk
    Givet at Lægerne i Kronikergården lader "Klinik-IT ApS" yde fjernsupport på lægesystemet
    Og at klinikken har underskrevet en databehandleraftale med "Klinik-IT ApS" den 20. november 2026
    Når jeg kontrollerer fortegnelserne den 1. december 2026
    Så er der ingen fejl hos Lægerne i Kronikergården

  Scenarie: En underdatabehandler, som klinikken aldrig har godkendt
    Givet at lægesystemets leverandør lægger backup hos "Backup ApS" uden at spørge klinikken
    Når jeg kontrollerer fortegnelserne den 1. december 2026
    Så har Lægerne i Kronikergården fejlen "DPIA-28-2-SUBPROCESSOR-UNAPPROVED"
    Og beskeden er på dansk og nævner "Backup ApS" og "art. 28, stk. 2"
