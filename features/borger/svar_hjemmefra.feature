# language: da
Egenskab: Jeg svarer på spørgeskemaet hjemmefra, og min læge beslutter
  Som patient i lænderygpakken vil jeg svare på spørgeskemaet om min ryg hjemmefra, så min læge kender mine scorer,
  før vi ses. Lægen får et forslag til rød, gul eller grøn, men det er lægen, der beslutter – og jeg vil først se
  farven, når lægen har besluttet.

  Baggrund:
    Givet at Karen Bak er tilmeldt Lægerne i Kronikergården

  @krav:PK-SPOERGESKEMA
  Scenarie: Mine svar bliver til scorer, som min læge kan se
    Når Karen sender sine svar om ryggen hjemmefra
    Så er svarene modtaget
    Og klinikken kan se Karens STarT Back-score 3 med lav risiko

  @krav:PK-SPOERGESKEMA
  Scenarie: Et skema, jeg ikke er færdig med, bliver ikke gemt
    Når Karen sender et skema, hun ikke er færdig med
    Så afvises svarene med fejlen "QR-STATUS"
    Og der er ikke gemt noget

  Scenarie: Lægen beslutter, og først da kan jeg se farven
    Givet at Karen har sendt sine svar om ryggen hjemmefra
    Når lægesystemet beder om et triageforslag med lægens vurdering af Karen
    Så kan Karen ikke se nogen farve endnu
    Når lægen vælger grøn med begrundelsen "Klarer sig godt med egne øvelser"
    Så kan Karen se lægens beslutning

  Scenarie: En anden patient kan ikke se mine svar
    Givet at Karen har sendt sine svar om ryggen hjemmefra
    Og at Ole Holm er tilmeldt Lægerne i Kronikergården
    Når Ole prøver at se Karens svar og scorer
    Så får Ole ingen af Karens svar eller scorer
