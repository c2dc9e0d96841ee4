# language: da
Egenskab: Borgeren ser i sin log, hvem der har set hendes notater
  Som borger vil jeg i min log kunne se, hvilke sundhedspersoner der har slået mig op,
  og hvornår de har brugt værdispring,
  så jeg kan reagere, hvis nogen har kigget, som ikke burde.

  Baggrund:
    Givet at Bente Lænderyg er patient hos Lægerne i Kronikergården
    Og at hendes læge har delt et notat fra årskontrollen og hendes diagnosekort
    Og at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente

  @krav:MINLOG-OPSLAG
  Scenarie: Lægens opslag står i loggen, men Bentes egne opslag gør ikke
    Når Bente åbner sine journalnotater
    Og overlæge Sofie Krag slår Bente op og læser notatet fra årskontrollen
    Så viser Bentes log, at Sofie Krag fra Rygcentret har søgt i og læst hendes notater
    Og Bentes log viser hverken hendes egne opslag eller lægesystemets deling

  @krav:SPAER-ALLE @krav:MINLOG-SPAERRET-OPSLAG
  Scenarie: Et opslag, som en spærring for alle stoppede, står ikke i loggen
    Givet at Bente har spærret for alle sundhedspersoner
    Når overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag ingen notater om Bente
    Og Bentes log er tom

  @krav:BORGER-KUN-EGNE
  Scenarie: Borgeren kan hverken se en andens notater eller en andens log
    Givet at Niels Vendelboe også er patient hos Lægerne i Kronikergården og har fået delt et notat
    Når Bente forsøger at se Niels Vendelboes notater
    Så får Bente at vide, at en borger kun kan se sine egne oplysninger
    Når Bente forsøger at se Niels Vendelboes log
    Så får Bente at vide, at en borger kun kan se sine egne oplysninger
