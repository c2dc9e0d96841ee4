# language: da
Egenskab: En indlæsning gemmes helt eller slet ikke
  Som databeskyttelsesrådgiver vil jeg indlæse skabelonen og klinikkernes fortegnelser fra filer i ét hug,
  så en fejl i én fil aldrig efterlader fortegnelsen halvt opdateret, og en fil aldrig gemmes anderledes,
  end den står.

  Baggrund:
    Givet at skabelonen for lænderygpakken er lagt ind i fortegnelsen

  Scenarie: En fejl i den sidste fil efterlader intet
    Givet en fil med skabelonen, hvor jeg har tilføjet databehandleren "Klinik-IT ApS"
    Og en kliniks eksport, der bygger på en skabelonrevision, som ikke findes i denne fortegnelse
    Når jeg indlæser de to filer
    Så bliver indlæsningen afvist med en dansk besked, der nævner den anden fil
    Og skabelonen står uændret i revision 1 uden "Klinik-IT ApS"

  Scenarie: En part, der står to gange, afvises
    Givet en fil med skabelonen, hvor lægesystemets leverandør står to gange
    Når jeg indlæser filen
    Så bliver filen afvist med fejlen "DPIA-ID-DUPLICATE" ved den anden leverandørs id
    Og skabelonen står uændret i revision 1 uden "Lægesystemer II A/S"

  Scenarie: Et felt, der står to gange, afvises
    Givet en fil med skabelonen, hvor titlen står to gange
    Når jeg indlæser filen
    Så bliver filen afvist med fejlen "DPIA-KEY-DUPLICATE" ved "/title"
    Og skabelonen står uændret i revision 1 uden "Anden titel"
