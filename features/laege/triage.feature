# language: da
Egenskab: Lægen får et forslag til rød, gul eller grøn og træffer selv beslutningen
  Som praktiserende læge vil jeg se, hvilken farve patientens svar og min egen vurdering peger på, og hvorfor,
  så jeg kan beslutte patientens forløb i lænderygpakken – og mit valg står ved siden af forslaget.

  Baggrund:
    Givet at Niels Vendelboe er tilknyttet lænderygpakken hos Lægerne Hasseris Bymidte

  Scenarie: Høj risiko og begrænset sundhedskompetence giver rød, og lægen kan se hvorfor
    Givet at Niels har svaret, at han ofte har brug for hjælp til at læse skriftligt materiale fra lægen
    Og at hans svar på STarT Back giver høj risiko
    Og at lægen har vurderet hans kliniske behov som moderat
    Når lægesystemet beder om et triageforslag
    Så er forslaget rødt
    Og begrundelsen nævner "Høj risiko efter STarT Back og begrænset sundhedskompetence"
    Og forslaget nævner regelsættets version og begge besvarelser
    Og forslaget er mærket som foreløbigt og ikke Sundhedsstyrelsens regel

  Scenarie: Lægen ændrer gul til grøn med en begrundelse, og forslaget bliver stående
    Givet at hans svar på STarT Back giver mellem risiko
    Og at lægen har vurderet hans kliniske behov som lavt
    Når lægesystemet beder om et triageforslag
    Så er forslaget gult
    Når lægen vælger grøn med begrundelsen "Kendt forløb, klarer sig godt med egne øvelser"
    Så er beslutningen grøn
    Og beslutningen peger tilbage på forslaget
    Og det gule forslag står stadig ved siden af beslutningen
    Og begrundelsen står i beslutningen

  Scenarie: Lægen kan ikke ændre farven uden at skrive hvorfor
    Givet at hans svar på STarT Back giver mellem risiko
    Og at lægen har vurderet hans kliniske behov som lavt
    Når lægesystemet beder om et triageforslag
    Og lægen vælger grøn uden begrundelse
    Så afvises beslutningen med fejlen "TRIAGE-REASON-MISSING"
    Og beskeden er på dansk og siger "begrundelse"
