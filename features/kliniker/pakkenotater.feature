# language: da
Egenskab: Notater fra lænderygpakken kan findes for sig
  Som fysioterapeut med behandlingsrelation vil jeg se patientens notater fra lænderygforløbet adskilt fra de øvrige,
  så jeg hurtigt kan følge op på de mål og planer, lægen og patienten har aftalt.

  Baggrund:
    Givet at Bente Lænderyg er patient hos Lægerne i Kronikergården
    Og at fysioterapeut Mette Lund på Fysioterapien Midtby har fået en henvisning på Bente

  @krav:PK-SOEG-PAKKE @krav:PK-PAKKEKODE-BEVARES
  Scenarie: Notatet fra årskontrollen hører til pakken, vaccinationsnotatet gør ikke
    Givet at lægen har skrevet et notat fra årskontrollen med mål og planer
    Og at lægen også har skrevet et notat, da Bente fik sin influenzavaccination
    Når begge notater er delt
    Så bærer notatet fra årskontrollen lænderygpakkens kode i delingsserverens oplysninger om notatet
    Og Mette Lund finder notatet fra årskontrollen blandt Bentes notater fra lænderygpakken
    Men ikke notatet om influenzavaccinationen

  @krav:SPAER-ORGANISATION
  Scenarie: Et pakkenotat, Bente har spærret for, er heller ikke at finde blandt pakkens notater
    Givet at lægen har skrevet et notat fra årskontrollen med mål og planer
    Og at lægen også har skrevet et notat, da Bente fik sin influenzavaccination
    Og at Bente har spærret for notater fra Lægerne i Kronikergården
    Når begge notater er delt
    Så finder Mette Lund ikke notatet fra årskontrollen blandt Bentes notater fra lænderygpakken
    Og Mette Lund får at vide, at nogle notater ikke er vist, fordi patienten har spærret for dem
