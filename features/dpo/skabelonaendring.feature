# language: da
Egenskab: En ændring i skabelonen når alle tilsluttede klinikker
  Som databeskyttelsesrådgiver vil jeg rette den fælles konsekvensanalyse ét sted,
  så hver tilsluttet klinik ser, hvad der er ændret, og ved, at den skal godkende sin konsekvensanalyse igen.

  Baggrund:
    Givet at skabelonen for lænderygpakken er lagt ind i fortegnelsen
    Og at tre klinikker har tilsluttet sig skabelonen, underskrevet standardaftalerne og godkendt deres konsekvensanalyse

  Scenarie: Health Hub får et nyt driftscenter
    Når jeg i skabelonen skifter Health Hubs driftscenter til "Sky-drift A/S" med begrundelsen "Health Hub skifter driftscenter"
    Så har hver klinik fået en ny revision med begrundelsen "Health Hub skifter driftscenter"
    Og hver klinik ser "Sky-drift A/S" i sin fortegnelse
    Og hver klinik får at vide, at dens godkendelse ikke længere dækker fortegnelsen
    Og hver klinik får at vide, at skabelonen er ændret siden godkendelsen
    Og forskellen siden hver kliniks godkendelse viser "Sky-drift A/S"

  Scenarie: Klinikkens egne oplysninger bevares
    Når jeg i skabelonen skifter Health Hubs driftscenter til "Sky-drift A/S" med begrundelsen "Health Hub skifter driftscenter"
    Så står hver kliniks eget navn stadig i dens fortegnelse
    Og hver klinik gemmer stadig kun sine egne ændringer

  Scenarie: En klinik godkender igen
    Når jeg i skabelonen skifter Health Hubs driftscenter til "Sky-drift A/S" med begrundelsen "Health Hub skifter driftscenter"
    Og den første klinik godkender sin konsekvensanalyse igen
    Så er fejlen "DPIA-SIGNOFF-STALE" væk hos den første klinik
    Men de to andre klinikker har den stadig
