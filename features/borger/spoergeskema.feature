# language: da
Egenskab: Mine svar på spørgeskemaet om min ryg
  Som patient i lænderygpakken vil jeg besvare spørgeskemaet hjemmefra i Min læge-appen,
  så min læge kender min situation, før vi ses – og et skema, der ikke er udfyldt rigtigt, må ikke blive til en
  forkert score.

  Scenarie: Et fuldt besvaret skema bliver til scorer, som lægen kan se
    Givet at jeg har svaret på alle spørgsmål om min ryg
    Og at jeg er enig i fire af de første otte STarT Back-udsagn og har svaret "meget" til, hvor generende smerterne har været
    Når mine svar modtages
    Så er min STarT Back-score 5 med mellem risiko
    Og scorerne gemmes som målinger, der peger tilbage på mine svar

  Scenarie: Et skema, hvor et obligatorisk spørgsmål mangler, afvises og scores ikke
    Givet at jeg har svaret på alle spørgsmål om min ryg
    Men at jeg har sprunget STarT Back-spørgsmål 5 over
    Når mine svar modtages
    Så afvises besvarelsen med fejlen "QR-ITEM-REQUIRED"
    Og der beregnes ingen scorer
    Og beskeden er på dansk og siger "obligatoriske"

  Scenarie: To ubesvarede afsnit i Oswestry giver ingen ODI-score, men resten scores
    Givet at jeg har svaret på alle spørgsmål om min ryg
    Men at jeg har sprunget to afsnit over i Oswestry-skemaet
    Når mine svar modtages
    Så er der ingen ODI-score, og advarslen "QR-SCORE-MISSING" siger hvorfor
    Og min STarT Back-score er stadig beregnet
