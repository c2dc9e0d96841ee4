# language: da
Egenskab: Et nyt notat venter et døgn, før jeg selv ser det
  Som borger vil jeg hellere høre om et nyt notat fra min læge end læse det alene,
  så lægens nye notater vises først for mig, og for den, der ser dem på mine vegne, et døgn efter, at de er skrevet,
  mens lægerne på sygehuset ser dem med det samme.

  @krav:BORGER-VENTETID
  Scenarie: Dagens notat venter på Bente, men overlægen ser det med det samme
    Givet at delingsserveren først viser borgeren lægens notater 24 timer efter, at de er skrevet
    Og at Bente Lænderyg er patient hos Lægerne i Kronikergården
    Og at hendes læge har delt et notat fra årskontrollen og hendes diagnosekort
    Og at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente
    Og at hendes læge for en time siden har delt et notat fra dagens konsultation
    Når Bente åbner sine journalnotater
    Så ser Bente notatet fra årskontrollen og diagnosekortet
    Men ikke notatet fra dagens konsultation
    Og Bente kan endnu ikke hente notatet fra dagens konsultation
    Når overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag notatet fra årskontrollen, notatet fra dagens konsultation og diagnosekortet
    Og Sofie Krag kan læse notatet fra dagens konsultation

  @krav:BORGER-VENTETID
  Scenarie: Mor ser heller ikke dagens notat om sin datter, før døgnet er gået
    Givet at delingsserveren først viser borgeren lægens notater 24 timer efter, at de er skrevet
    Og at Alma Holm på 8 år er patient hos Lægerne i Kronikergården
    Og at lægen har delt et notat fra årskontrollen og et diagnosekort om Alma
    Og at lægen for en time siden har delt et notat fra dagens konsultation om Alma
    Og at Mette Holm har forældremyndigheden over Alma
    Når Mette åbner Almas journalnotater
    Så ser Mette notatet fra årskontrollen og diagnosekortet
    Men ikke notatet fra dagens konsultation
    Og Mette kan endnu ikke hente notatet fra dagens konsultation
