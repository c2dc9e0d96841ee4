# language: da
Egenskab: Borgeren bestemmer selv, hvem der må se notaterne fra hendes læge
  Som borger vil jeg kunne spærre for, at bestemte læger eller steder ser notaterne fra min læge,
  og se i min log, hvem der alligevel har set dem og hvorfor,
  så jeg kan stole på, at det, jeg fortæller min læge om mine lænderygsmerter, ikke flyder frit.

  Baggrund:
    Givet at Bente Lænderyg er patient hos Lægerne i Kronikergården
    Og at hendes læge har delt et notat fra årskontrollen og hendes diagnosekort
    Og at hendes tidligere læge, Lægehuset ved Åen, har delt et notat fra foråret 2025
    Og at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente

  @krav:SPAER-ALLE
  Scenarie: Borgeren ser selv alle sine notater, også når hun har spærret for alle
    Givet at Bente har spærret for alle sundhedspersoner
    Når Bente åbner sine journalnotater
    Så ser Bente notatet fra årskontrollen, notatet fra foråret 2025 og diagnosekortet

  @krav:SPAER-PERSON @krav:MINLOG-SPAERRET-OPSLAG
  Scenarie: Borgeren spærrer for sin egen læge, og lægen ser intet
    Givet at hendes egen læge, Jens Holm, er tilknyttet hende som praktiserende læge
    Og at Bente har spærret for Jens Holm
    Når Jens Holm slår Bente op
    Så ser Jens Holm ingen notater om Bente
    Og Bentes log viser ikke, at Jens Holm har slået hende op
    Men Sofie Krag ser stadig notatet fra årskontrollen, notatet fra foråret 2025 og diagnosekortet

  @krav:VAERDISPRING @krav:MINLOG-VAERDISPRING
  Scenarie: Borgeren spærrer for sin egen læge og ser i sin log, at lægen brugte værdispring
    Givet at hendes egen læge, Jens Holm, er tilknyttet hende som praktiserende læge
    Og at Bente har spærret for Jens Holm
    Når Bente i konsultationen giver Jens Holm lov, og han bruger værdispring med hendes samtykke
    Så ser Jens Holm notatet fra årskontrollen, notatet fra foråret 2025 og diagnosekortet
    Og Bentes log viser, at Jens Holm fra Lægerne i Kronikergården har set hendes notater med værdispring

  @krav:SPAER-ORGANISATION
  Scenarie: Borgeren spærrer for sin tidligere læge, og sygehuset får at vide, at noget er skjult
    Givet at Bente har spærret for notater fra Lægehuset ved Åen
    Når overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag notatet fra årskontrollen og diagnosekortet
    Men ikke notatet fra foråret 2025
    Og Sofie Krag får at vide, at nogle notater ikke er vist, fordi patienten har spærret for dem

  @krav:SPAER-PERIODE
  Scenarie: Borgeren spærrer for notaterne fra en periode, hvor hun var sygemeldt med stress
    Givet at Bente har spærret for notater fra 1. januar til 30. juni 2025
    Når overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag notatet fra årskontrollen og diagnosekortet
    Men ikke notatet fra foråret 2025

  @krav:SPAER-OPHAEV
  Scenarie: Borgeren ophæver sin spærring, og lægen kan se notaterne igen
    Givet at Bente har spærret for alle sundhedspersoner
    Og at overlæge Sofie Krag derfor ingen notater ser om Bente
    Når Bente ophæver sin spærring
    Og overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag notatet fra årskontrollen, notatet fra foråret 2025 og diagnosekortet
