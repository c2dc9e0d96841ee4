# language: da
Egenskab: Sundhedspersoner ser patientens notater, når de behandler hende
  Som læge på sygehuset eller fysioterapeut vil jeg kunne læse notaterne fra patientens egen læge,
  når jeg behandler patienten, og få en klar besked, når jeg ikke må,
  så jeg ved, hvad der skal til, før jeg kan se dem.

  Baggrund:
    Givet at Bente Lænderyg er patient hos Lægerne i Kronikergården
    Og at hendes læge har delt et notat fra årskontrollen og hendes diagnosekort

  @krav:ADG-BEHANDLINGSRELATION
  Scenarie: Lægen på sygehuset har ingen behandlingsrelation og får at vide hvorfor
    Når lægen Søren Bak på skadestuen slår Bente op
    Så får Søren Bak at vide, at han ingen aktuel behandlingsrelation har til patienten
    Og beskeden henviser til sundhedsloven § 42 a
    Og Søren Bak kan heller ikke hente notatet fra årskontrollen

  @krav:DEL-SOEG @krav:DEL-SOEG-KUN-PATIENTEN
  Scenarie: Lægen med en henvisning ser notaterne og diagnosekortet
    Givet at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente
    Når overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag notatet fra årskontrollen og diagnosekortet
    Og Sofie Krag kan læse notatet fra årskontrollen

  @krav:ADG-BEHANDLINGSRELATION
  Scenarie: En udløbet henvisning giver ikke længere adgang
    Givet at overlæge Sofie Krag på Rygcentret havde en henvisning på Bente, som udløb i sidste måned
    Når overlæge Sofie Krag slår Bente op
    Så får Sofie Krag at vide, at hun ingen aktuel behandlingsrelation har til patienten

  @krav:DEL-SOEG @krav:DEL-SOEG-KUN-PATIENTEN
  Scenarie: Alle på fysioterapiklinikken med henvisningen kan se notaterne
    Givet at Fysioterapien Midtby har fået en henvisning på Bente
    Når fysioterapeut Mette Lund fra Fysioterapien Midtby slår Bente op
    Så ser Mette Lund notatet fra årskontrollen og diagnosekortet

  @krav:DEL-SOEG-ERSTATTEDE
  Scenarie: Lægen ser det rettede notat og kan finde det gamle, når hun beder om det
    Givet at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente
    Og at Bentes læge har rettet notatet fra årskontrollen
    Når overlæge Sofie Krag slår Bente op
    Så ser Sofie Krag det rettede notat og diagnosekortet
    Men ikke notatet fra årskontrollen
    Når Sofie Krag også beder om de erstattede notater
    Så ser Sofie Krag notatet fra årskontrollen, det rettede notat og diagnosekortet

  @krav:VAERDISPRING @krav:MINLOG-VAERDISPRING
  Scenarie: Værdispring, når patienten bliver bragt bevidstløs ind
    Givet at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente
    Og at Bente har spærret for alle sundhedspersoner
    Når Bente bliver bragt bevidstløs ind, og Sofie Krag bruger værdispring, fordi det er livsvigtigt
    Så ser Sofie Krag notatet fra årskontrollen og diagnosekortet
    Og Bentes log viser, at Sofie Krag fra Rygcentret har set hendes notater med værdispring

  @krav:VAERDISPRING-GRUND
  Scenarie: Værdispring kræver en af lovens grunde
    Givet at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente
    Og at Bente har spærret for alle sundhedspersoner
    Når Sofie Krag bruger værdispring af nysgerrighed
    Så får Sofie Krag at vide, at værdispring kræver en grund: consent, not-contactable eller vital-interest

  @krav:ADG-BEHANDLINGSRELATION
  Scenarie: En henvisning på én patient giver ikke adgang til en anden
    Givet at overlæge Sofie Krag på Rygcentret har fået en henvisning på Bente
    Og at Niels Vendelboe også er patient hos Lægerne i Kronikergården og har fået delt et notat
    Når overlæge Sofie Krag slår Niels Vendelboe op
    Så får Sofie Krag at vide, at hun ingen aktuel behandlingsrelation har til patienten
