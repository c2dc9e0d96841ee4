# language: da
Egenskab: Jeg ser notaterne om mit barn og om den, der har givet mig fuldmagt
  Som mor til et barn under 15 vil jeg kunne læse de notater, lægen deler om mit barn,
  og som søn med fuldmagt fra min far vil jeg kunne læse hans notater,
  men kun så længe forældremyndigheden eller fuldmagten gælder og uden at kunne ændre hans spærringer,
  og der skal stå i deres log, at det var mig, der kiggede.

  @krav:BORGER-FORAELDER @krav:MINLOG-PAA-VEGNE-AF
  Scenarie: Mor ser notaterne om sin datter på 8 år, og datterens log viser, at det var mor
    Givet at Alma Holm på 8 år er patient hos Lægerne i Kronikergården
    Og at lægen har delt et notat fra årskontrollen og et diagnosekort om Alma
    Og at Mette Holm har forældremyndigheden over Alma
    Når Mette åbner Almas journalnotater
    Så ser Mette notatet fra årskontrollen og diagnosekortet
    Og Mette kan hente notatet fra årskontrollen om Alma
    Og Almas log viser, at Mette har søgt i og læst hendes notater som forælder
    Og Mettes egen log viser intet om Alma

  @krav:BORGER-FORAELDER
  Scenarie: Da sønnen fyldte 15, holdt mors adgang op, men han ser stadig selv sine notater
    Givet at Oskar Holm fyldte 15 år for en uge siden og er patient hos Lægerne i Kronikergården
    Og at lægen har delt et notat fra årskontrollen og et diagnosekort om Oskar
    Og at Mette Holm fik forældremyndigheden over Oskar, da han var 10 år
    Når Mette åbner Oskars journalnotater
    Så får Mette at vide, at en borger kun kan se sine egne oplysninger
    Og Mette kan heller ikke hente notatet fra årskontrollen om Oskar
    Når Oskar åbner sine journalnotater
    Så ser Oskar notatet fra årskontrollen og diagnosekortet

  @krav:BORGER-FULDMAGT @krav:MINLOG-PAA-VEGNE-AF
  Scenarie: Sønnen med fuldmagt ser fars notater, og fars log viser, at det var sønnen
    Givet at Ole Lund på 71 år er patient hos Lægerne i Kronikergården
    Og at lægen har delt et notat fra årskontrollen og et diagnosekort om Ole
    Og at Ole har givet sin søn, Jonas Lund, fuldmagt
    Når Jonas åbner Oles journalnotater
    Så ser Jonas notatet fra årskontrollen og diagnosekortet
    Og Jonas kan hente notatet fra årskontrollen om Ole
    Og Oles log viser, at Jonas har søgt i og læst hans notater med fuldmagt

  @krav:SPAER-PAA-VEGNE-AF
  Scenarie: Fars spærring gælder stadig for lægerne, selv om sønnen med fuldmagt ser notaterne
    Givet at Ole Lund på 71 år er patient hos Lægerne i Kronikergården
    Og at lægen har delt et notat fra årskontrollen og et diagnosekort om Ole
    Og at overlæge Sofie Krag på Rygcentret har fået en henvisning på Ole
    Og at Ole har givet sin søn, Jonas Lund, fuldmagt
    Og at Ole har spærret for alle sundhedspersoner
    Når Jonas åbner Oles journalnotater
    Så ser Jonas notatet fra årskontrollen og diagnosekortet
    Når overlæge Sofie Krag slår Ole op
    Så ser Sofie Krag ingen notater om Ole
    Når Jonas forsøger at ophæve Oles spærring
    Så får Jonas at vide, at kun borgeren selv kan spærre og ophæve spærringer
    Og overlæge Sofie Krag ser stadig ingen notater om Ole

  @krav:BORGER-FULDMAGT @krav:MINLOG-PAA-VEGNE-AF
  Scenarie: Far tilbagekalder fuldmagten, og sønnen kan ikke længere se hans notater
    Givet at Ole Lund på 71 år er patient hos Lægerne i Kronikergården
    Og at lægen har delt et notat fra årskontrollen og et diagnosekort om Ole
    Og at Ole har givet sin søn, Jonas Lund, fuldmagt
    Og at Jonas har set Oles journalnotater
    Når Ole tilbagekalder fuldmagten
    Og Jonas åbner Oles journalnotater
    Så får Jonas at vide, at en borger kun kan se sine egne oplysninger
    Og Jonas kan heller ikke hente notatet fra årskontrollen om Ole
    Og Oles log viser, at Jonas har søgt i hans notater med fuldmagt, mens den gjaldt
