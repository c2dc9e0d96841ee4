# language: da
Egenskab: En godkendelse gælder præcis den revision, der blev godkendt
  Som databeskyttelsesrådgiver vil jeg kunne vise Datatilsynet, at en kliniks godkendelse gælder præcis
  det indhold, lægen læste, så en godkendelse aldrig glider fra sit indhold.

  Baggrund:
    Givet at skabelonen for lænderygpakken er lagt ind i fortegnelsen
    Og at Lægerne i Kronikergården med SOR-nummer 123456789012 har tilsluttet sig skabelonen
    Og at klinikken har underskrevet skabelonens standardaftaler den 1. november 2026

  Scenarie: Godkendelsen og eksporten bærer revisionens hash
    Når lægen godkender klinikkens konsekvensanalyse
    Så bærer godkendelsen hashen af den revision, lægen godkendte
    Og eksporten til Datatilsynet bærer den samme hash og godkendelsen
    Og kontrollen den 1. december 2026 melder ingen fejl og ingen advarsel om godkendelsen

  Scenarie: En senere ændring gør godkendelsen forældet
    Givet at lægen har godkendt klinikkens konsekvensanalyse
    Når klinikken tilføjer modtageren "Kommunens genoptræning" til delingen af journalnotater
    Så melder kontrollen den 1. december 2026 fejlen "DPIA-SIGNOFF-STALE"
    Og den godkendte revision står uændret i historikken

  Scenarie: Man kan ikke godkende en revision, der blev ændret, mens man læste den
    Givet at lægen har læst revision 1 af klinikkens konsekvensanalyse
    Men at klinikken i mellemtiden tilføjer modtageren "Kommunens genoptræning" til delingen af journalnotater
    Når lægen godkender den revision, hun læste
    Så bliver godkendelsen afvist, fordi fortegnelsen er ændret siden
    Og der er ingen godkendelse i historikken
