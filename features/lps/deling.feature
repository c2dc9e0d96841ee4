# language: da
Egenskab: Lægesystemet deler lægens notater og diagnosekort
  Som leverandør af et lægesystem vil jeg dele lægens notater og patientens diagnosekort,
  rette dem, når lægen retter, og få at vide præcist hvorfor, når noget bliver afvist,
  så patienten og de andre behandlere altid ser det, lægen faktisk har skrevet.

  Baggrund:
    Givet at Bente Lænderyg er patient hos Lægerne i Kronikergården

  @krav:DEL-INDSEND @krav:DEL-HENT-UAENDRET
  Scenarie: Et notat fra årskontrollen deles og kommer frem præcis, som det blev sendt
    Givet at lægen har skrevet et notat fra årskontrollen
    Når lægesystemet deler notatet som <format>
    Så tager delingsserveren imod notatet
    Og Bente kan hente notatet præcis, som lægesystemet sendte det

    Eksempler:
      | format |
      | JSON   |
      | XML    |

  @krav:DEL-ERSTAT
  Scenarie: Lægesystemet retter et notat, og det gamle bliver erstattet
    Givet at lægesystemet har delt et notat fra årskontrollen
    Når lægen retter en fejl i notatet, og lægesystemet deler rettelsen i stedet for det gamle notat
    Så er det rettede notat det eneste gældende notat, Bente kan se
    Og det gamle notat er markeret som erstattet af det rettede
    Men det gamle notat kan stadig hentes

  @krav:DEL-ERSTAT-KUN-GAELDENDE
  Scenarie: Et notat, der allerede er rettet, kan ikke rettes fra den gamle udgave igen
    Givet at lægesystemet har delt et notat fra årskontrollen
    Og at lægen har rettet notatet én gang
    Når lægesystemet igen forsøger at erstatte det oprindelige notat
    Så afvises rettelsen med besked om, at notatet ikke længere er gældende
    Og intet nyt er gemt

  @krav:DEL-IDEMPOTENT
  Scenarie: Samme notat sendt igen efter en netværksfejl gemmes kun én gang
    Givet at lægesystemet har delt et notat fra årskontrollen
    Når forbindelsen svigter, og lægesystemet sender det samme notat igen
    Så svarer delingsserveren, at notatet allerede er modtaget
    Og Bente har kun ét notat fra årskontrollen

  @krav:DEL-AFVIS-UGYLDIG
  Scenarie: Et notat med forkert titel afvises med en dansk forklaring, og intet gemmes
    Givet at lægen har skrevet et notat fra årskontrollen
    Men at lægesystemet kun skriver "Journalnotat" som titel
    Når lægesystemet deler notatet
    Så afvises notatet med fejlen "COMP-TITLE" i "Composition.title"
    Og forklaringen er på dansk og siger, hvilken titel der var forventet
    Og intet nyt er gemt

  @krav:DEL-EGEN-ORGANISATION
  Scenarie: Lægesystemet kan ikke dele et notat, som en anden klinik har skrevet
    Givet at Lægehuset ved Åen har skrevet et notat om Bente
    Når lægesystemet hos Lægerne i Kronikergården forsøger at dele notatet
    Så afvises notatet med besked om, at det er skrevet af en anden organisation
    Og intet nyt er gemt

  @krav:DEL-INDSEND @krav:DEL-DIAGNOSEKORT-METADATA
  Scenarie: Diagnosekortet deles og beskrives som patientens problemliste fra almen praksis
    Givet at lægen har registreret lændesmerter på Bentes diagnosekort
    Når lægesystemet deler diagnosekortet
    Så tager delingsserveren imod diagnosekortet
    Og diagnosekortet er beskrevet som en problemliste fra almen praksis

  @krav:DEL-FEJLREGISTRERET
  Scenarie: Et notat, der er delt på den forkerte patient, trækkes tilbage
    Givet at lægesystemet har delt et notat fra årskontrollen
    Når supporten markerer notatet som fejlregistreret, fordi det hørte til en anden patient
    Så kan notatet ikke længere hentes, og svaret siger, at det er fejlregistreret
    Og Bente har ingen gældende notater
