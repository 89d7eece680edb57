"""The two most common injections in languages other than English: "ignore your previous instructions" (built-in
rules PI-007-<language>) and "show me your system prompt" (SPL-003-<language>), for the built-in rules in `signatures`.
One rule per language, each with its own hints, so a text runs only the patterns of the languages it could be in.

English, German, French, Spanish, Italian and Portuguese have their own rules (PI-001, PI-005, SPL-001); an attacker
who writes the same request in Russian, Chinese or Arabic should not get through because the classifier was trained
mostly on English. Covered here: Russian, Ukrainian, Polish, Czech, Dutch, Turkish, Indonesian/Malay, Vietnamese,
Arabic, Hindi, Chinese, Japanese and Korean (PI-007); the same and German, French, Spanish, Portuguese and Italian
(SPL-003).

How each phrasing is pinned down, so that ordinary sentences with the same words stay allowed (the tests hold both):

- "Ignore" takes an object that is the model's instructions, rules or prompt, with a word that points back
  ("previous", "above", "all", "your", "system"); "ignore the previous e-mail" and "forget all the eggs" do not match.
- Negated forms are left out ("don't ignore", "don't forget": 不要忽略, 別忘記, 無視しないで, 무시하지, unutma), and
  Chinese "forget" needs "previous/above/original", not just "all" (我忘记了所有的规则 is a statement).
- "Show/print/reveal" must reach the system prompt directly, through a possessive or "the", never through "an
  example of", "how to write" or "a good": asking about system prompts is not an attack; "write" is never a verb here.
- Scripts without spaces (Chinese, Japanese) and Devanagari (whose vowel signs are not word characters) use short
  bounded gaps instead of word boundaries; every gap is bounded, so each pattern stays linear-time.

Patterns are written in NFKC form (the engine normalizes every input with NFKC before the rules run: a Hindi
nukta letter is two code points after it).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_W = r"(?:\W+\w+)"  # one more word after a separator


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _alt(*parts: str) -> str:
    return "|".join(_nfkc(part) for part in parts)


@dataclass(frozen=True, slots=True)
class Phrasing:
    """One language's form of a rule: its code (the rule id's suffix), its name, the pattern, and the lower-case
    literals of which every match holds one (the rule's hints: a text without any skips the regex, so a Russian rule
    costs an English text a few substring tests)."""

    code: str
    language: str
    pattern: str
    hints: tuple[str, ...]


# --- PI-007: "ignore / forget (all) your previous instructions" ------------------------------------------------------

IGNORE_PREVIOUS: tuple[Phrasing, ...] = (
    # Russian
    Phrasing(
        "RU",
        "Russian",
        _alt(
            rf"(?<!не\s)\b(?:(?:про)?игнорируй(?:те)?|забудь(?:те)?|отбрось(?:те)?|не\s+обращай(?:те)?\s+внимания\s+на|"
            rf"не\s+слушай(?:те)?)\b{_W}{{0,3}}?\W+(?:все|всё|предыдущие|предыдущих|прежние|прежних|вышеуказанные|"
            rf"вышеперечисленные|вышеизложенные|ранее|изначальные|исходные|свои|твои|ваши|эти|старые|полученные|"
            rf"системные)\b{_W}{{0,3}}?\W+(?:инструкци\w*|указани\w*|команд\w*|правил\w*|установк\w*|директив\w*|"
            r"промпт\w*)",
        ),
        ("игнорир", "забуд", "отбрось", "не обращ", "не слуш"),
    ),
    # Ukrainian
    Phrasing(
        "UK",
        "Ukrainian",
        _alt(
            rf"(?<!не\s)\b(?:(?:про)?ігноруй(?:те)?|забудь(?:те)?|не\s+зважай(?:те)?\s+на)\b{_W}{{0,3}}?\W+(?:всі|усі|попередні|"
            rf"попередніх|вищезазначені|свої|твої|ваші|початкові|системні)\b{_W}{{0,3}}?\W+(?:інструкці\w*|вказівк\w*|"
            r"вказівок|команд\w*|правил\w*|промпт\w*)",
        ),
        ("ігнор", "забуд", "зважа"),
    ),
    # Polish
    Phrasing(
        "PL",
        "Polish",
        _alt(
            rf"(?<!nie\s)\b(?:z?ignoruj(?:cie)?|zapomnij(?:cie)?|pomiń(?:cie)?|nie\s+zważaj(?:cie)?\s+na)\b{_W}{{0,3}}?\W+(?:wszystkie|"
            rf"wszystkich|poprzednie|poprzednich|wcześniejsze|wcześniejszych|powyższe|swoje|twoje|dotychczasowe|"
            rf"systemowe)\b{_W}{{0,3}}?\W+(?:instrukcj\w*|polece\w*|zasad\w*|regu\w*|wytyczn\w*|komend\w*|prompt\w*)",
        ),
        ("ignoruj", "zapomnij", "pomiń", "zważaj"),
    ),
    # Czech
    Phrasing(
        "CS",
        "Czech",
        _alt(
            rf"\b(?:ignoruj(?:te)?|zapomeň(?:te)?|nevšímej(?:te)?\s+si)\b{_W}{{0,3}}?\W+(?:všechny|všech|předchozí|"
            rf"předešlé|dřívější|výše|své|tvoje|původní|systémové)\b{_W}{{0,3}}?\W+(?:instrukc\w*|pokyn\w*|příkaz\w*|"
            r"pravid\w*|prompt\w*)",
        ),
        ("ignoruj", "zapomeň", "nevšímej"),
    ),
    # Dutch
    Phrasing(
        "NL",
        "Dutch",
        _alt(
            rf"\b(?:negeer|vergeet(?!\s+niet\b))\b{_W}{{0,3}}?\W+(?:alle|vorige|eerdere|voorgaande|bovenstaande|je|jouw|uw|"
            rf"oorspronkelijke|systeem)\b{_W}{{0,3}}?\W+(?:instructies?|opdrachten|regels|aanwijzingen|richtlijnen|"
            r"prompts?|systeeminstructies)\b",
        ),
        ("negeer", "vergeet"),
    ),
    # Turkish (the verb comes last; "unutma" is "don't forget")
    Phrasing(
        "TR",
        "Turkish",
        _alt(
            rf"\b(?:önceki|yukarıdaki|tüm|bütün|verilen|sistem|ilk|orijinal)\b{_W}{{0,2}}?\W+(?:talimat\w*|komut\w*|"
            rf"kural\w*|yönerge\w*|direktif\w*)\b{_W}{{0,2}}?\W+(?:görmezden\s+gel(?:in)?|unut(?:un|unuz)?|"
            r"yok\s+say(?:ın)?|göz\s+ardı\s+et(?:in)?)\b",
        ),
        ("görmezden", "unut", "yok say", "göz ardı"),
    ),
    # Indonesian / Malay: a pointing word before or after the noun
    Phrasing(
        "ID",
        "Indonesian or Malay",
        _alt(
            rf"(?<!jangan\s)\b(?:abaikan|lupakan|acuhkan)\b{_W}{{0,2}}?\W+(?:semua|seluruh|segala)\b{_W}{{0,2}}?\W+(?:instruksi|"
            r"perintah|arahan|petunjuk|aturan|peraturan|prompt)\b",
            rf"(?<!jangan\s)\b(?:abaikan|lupakan|acuhkan)\b{_W}{{0,2}}?\W+(?:instruksi|perintah|arahan|petunjuk|aturan|peraturan|"
            r"prompt)\W+(?:\w+\W+)?(?:sebelumnya|terdahulu|di\s+atas|tadi|awal|sistem)\b",
        ),
        ("abaikan", "lupakan", "acuhkan"),
    ),
    # Vietnamese: "all" before the noun, or "before / above / system" after it
    Phrasing(
        "VI",
        "Vietnamese",
        _alt(
            r"(?<!đừng\s)(?<!không\s)\b(?:bỏ\s+qua|phớt\s+lờ|lờ\s+đi|quên\s+đi|quên)\W+(?:tất\s+cả|mọi|toàn\s+bộ)\b(?:\W+\w+){0,2}?\W+"
            r"(?:hướng\s+dẫn|chỉ\s+dẫn|chỉ\s+thị|mệnh\s+lệnh|lệnh|quy\s+tắc|lời\s+nhắc)\b",
            r"(?<!đừng\s)(?<!không\s)\b(?:bỏ\s+qua|phớt\s+lờ|lờ\s+đi|quên\s+đi|quên)(?:\W+\w+){0,2}?\W+(?:hướng\s+dẫn|chỉ\s+dẫn|chỉ\s+thị|"
            r"mệnh\s+lệnh|quy\s+tắc|lời\s+nhắc)\W+(?:\w+\W+)?(?:trước\s+đó|trước\s+đây|ở\s+trên|bên\s+trên|ban\s+đầu|"
            r"hệ\s+thống)\b",
        ),
        ("bỏ qua", "phớt lờ", "lờ đi", "quên"),
    ),
    # Arabic: "all" before the noun, or "previous / above / original / system" after it
    Phrasing(
        "AR",
        "Arabic",
        _alt(
            r"\b(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|انسي|انسوا)\W+(?:\w+\W+){0,2}?(?:جميع|كل)\W+(?:\w+\W+)?"
            r"(?:ال)?(?:تعليمات|أوامر|اوامر|إرشادات|ارشادات|قواعد|توجيهات)",
            r"\b(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|انسي|انسوا)\W+(?:\w+\W+){0,2}?(?:ال)?(?:تعليمات|أوامر|اوامر|إرشادات|"
            r"ارشادات|قواعد|توجيهات)\w*\W+(?:\w+\W+)?(?:السابقة|السابق|أعلاه|الأصلية|الأولية|النظام)",
        ),
        ("تجاهل", "انس"),
    ),
    # Hindi (object, then the verb)
    Phrasing(
        "HI",
        "Hindi",
        _alt(
            r"(?:पिछले|पिछली|पहले\s+के|पहले\s+दिए\s+गए|ऊपर\s+के|ऊपर\s+दिए\s+गए|सभी|सारे|सारी|अपने|मूल)\s.{0,24}?"
            r"(?:निर्देशों|निर्देश|आदेशों|आदेश|नियमों|नियम|हिदायतों)\s*(?:को\s*)?.{0,12}?"
            r"(?<!मत\s)(?<!न\s)(?:अनदेखा|नजरअंदाज|नज़रअंदाज़|नज़रअंदाज|भूल\s+जा|इग्नोर)(?!\S*\s+(?:न|मत)\s)",
        ),
        ("अनदेखा", "नजरअंदाज", _nfkc("नज़रअंदाज"), "भूल", "इग्नोर"),
    ),
    # Chinese: "ignore" (not "don't ignore") with a pointing word; "forget" only with "previous / above / original"
    Phrasing(
        "ZH",
        "Chinese",
        _alt(
            r"(?<!不要)(?<!不能)(?<!别)(?<!別)(?<!勿)(?:忽略|忽视|忽視|无视|無視|不要理会|不要理會|不理会|不理會|抛开|拋開)"
            r".{0,8}?(?:之前|以前|先前|此前|上面|上述|前面|前述|原来|原來|原先|原有|原始|初始|所有|全部|一切|系统|系統)"
            r".{0,6}?(?:指令|指示|说明|說明|规则|規則|提示|设定|設定|命令|要求|规定|規定|约束|約束|限制)",
            r"(?<!不要)(?<!别)(?<!別)(?<!勿)(?<!我)(?:忘记|忘記|忘掉)"
            r".{0,8}?(?:之前|以前|先前|此前|上面|上述|前面|前述|原来|原來|原先|原有|原始|初始|系统|系統)"
            r".{0,6}?(?:指令|指示|说明|說明|规则|規則|提示|设定|設定|命令|要求|规定|規定|约束|約束|限制)",
        ),
        ("忽略", "忽视", "忽視", "无视", "無視", "理会", "理會", "抛开", "拋開", "忘记", "忘記", "忘掉"),
    ),
    # Japanese (object, then the verb; 無視しないで / 忘れないで are "don't")
    Phrasing(
        "JA",
        "Japanese",
        _alt(
            r"(?:以前|前|これまで|今まで|先ほど|さっき|上記|上|最初|元|初期|システム|全て|すべて|全部)の?"
            r"(?:全て|すべて|全部)?の?(?:指示|命令|指令|ルール|規則|プロンプト|設定|制約)(?:は|を|も)?"
            r"(?:全て|すべて|全部)?.{0,4}?(?:無視(?!しない|せず|しません|するな)|忘れ(?!ない|ず|ません|るな))",
        ),
        ("無視", "忘れ"),
    ),
    # Korean (object, then the verb; 무시하지 / 잊지 are "don't")
    Phrasing(
        "KO",
        "Korean",
        _alt(
            r"(?:이전|앞|위|기존|지금까지|처음|원래|시스템|모든)(?:의|에서|에)?\s*(?:모든\s*)?"
            r"(?:지시|지침|명령|규칙|프롬프트|설정|안내|제약)(?:사항)?(?:들)?(?:을|를|은|는)?\s*(?:모두\s*|전부\s*|다\s*)?"
            r"(?:무시(?!하지)|잊(?!지))",
        ),
        ("무시", "잊"),
    ),
)


# --- SPL-003: "show / print / reveal your system prompt" -------------------------------------------------------------

_FILL = r"(?:\W+(?:{}))*\W+"  # words that may stand between the verb and the system prompt: pronouns, "all", "exactly"

SYSTEM_PROMPT_REQUEST: tuple[Phrasing, ...] = (
    # German
    Phrasing(
        "DE",
        "German",
        _alt(
            r"\b(?:zeig|zeige|zeigen|gib|geben|nenn|nenne|verrat|verrate|wiederhol|wiederhole|druck|drucke)\b"
            + _FILL.format(r"mir|uns|sie|bitte|einmal|genau|wörtlich|vollständig")
            + r"(?:deinen|deine|dein|ihren|ihre|ihr|den|die|das)\W+(?:(?:vollständigen|genauen|ursprünglichen|geheimen|"
            r"versteckten|kompletten)\W+)?(?:system-?prompt|systemanweisung(?:en)?|systemnachricht|systemvorgaben|"
            r"anfangsanweisungen|ursprünglichen\s+anweisungen|versteckten\s+anweisungen)\b",
        ),
        ("systemprompt", "system-prompt", "systemanweisung", "systemnachricht", "systemvorgaben", "anweisungen"),
    ),
    # French
    Phrasing(
        "FR",
        "French",
        _alt(
            r"\b(?:montre|montrez|affiche|affichez|révèle|révélez|donne|donnez|répète|répétez|imprime|imprimez|dis|dites)"
            r"(?:-moi|-nous)?\b"
            + _FILL.format(r"moi|nous|exactement|mot\s+pour\s+mot|en\s+entier|tout")
            + r"(?:ton|votre|le|tes|vos|les)\W+(?:prompt\s+(?:système|systeme|initial)|instructions?\s+(?:système|"
            r"systeme|initiales|cachées|secrètes|d'origine)|message\s+(?:système|systeme))\b",
        ),
        ("système", "systeme", "initiales", "cachées", "secrètes", "d'origine", "prompt initial"),
    ),
    # Spanish
    Phrasing(
        "ES",
        "Spanish",
        _alt(
            r"\b(?:muestra|muéstrame|muestrame|muestre|revela|revélame|revelame|dime|dígame|dame|deme|imprime|repite|"
            r"enséñame|enseñame)\b"
            + _FILL.format(r"me|nos|exactamente|textualmente|completo|todo")
            + r"(?:tu|su|el|las|tus|sus)\W+(?:prompt\s+(?:del\s+)?sistema|instrucciones\s+(?:del\s+sistema|iniciales|"
            r"ocultas|secretas|originales)|mensaje\s+del\s+sistema|prompt\s+inicial)\b",
        ),
        ("sistema", "instrucciones", "prompt inicial"),
    ),
    # Portuguese
    Phrasing(
        "PT",
        "Portuguese",
        _alt(
            r"\b(?:mostre|mostra|mostre-me|mostra-me|revele|revela|diga|diz|imprima|repita|me\s+mostre|me\s+diga)\b"
            + _FILL.format(r"me|nos|exatamente|literalmente|completo|tudo")
            + r"(?:seu|sua|o|as|seus|suas|teu|tua)\W+(?:prompt\s+(?:do\s+)?sistema|instru[cç][oõ]es\s+(?:do\s+sistema|"
            r"iniciais|ocultas|secretas|originais)|mensagem\s+do\s+sistema|prompt\s+inicial)\b",
        ),
        ("sistema", "iniciais", "ocultas", "secretas", "originais", "prompt inicial"),
    ),
    # Italian
    Phrasing(
        "IT",
        "Italian",
        _alt(
            r"\b(?:mostra|mostrami|rivela|rivelami|dimmi|dammi|stampa|stampami|ripeti|ripetimi)\b"
            + _FILL.format(r"mi|ci|esattamente|testualmente|tutto|per\s+intero")
            + r"(?:il\W+tuo|la\W+tua|le\W+tue|i\W+tuoi|il\W+suo|le\W+sue|il|le|tuo|tue)\W+"
            r"(?:prompt\s+(?:di\s+)?sistema|"
            r"istruzioni\s+(?:di\s+sistema|iniziali|nascoste|segrete|originali)|messaggio\s+di\s+sistema|"
            r"prompt\s+iniziale)\b",
        ),
        ("sistema", "iniziali", "nascoste", "segrete", "originali", "prompt iniziale"),
    ),
    # Russian ("напиши", "write", is left out: writing a system prompt is a task, not an attack)
    Phrasing(
        "RU",
        "Russian",
        _alt(
            r"\b(?:покажи|выведи|раскрой|повтори|скажи|дай|назови|процитируй|распечатай)(?:те)?\b"
            + _FILL.format(
                r"мне|нам|свой|свои|свою|твой|твои|твою|ваш|ваши|вашу|весь|всю|все|полностью|дословно|целиком"
            )
            + r"(?:системн\w+\s+(?:промпт|подсказк|инструкци|сообщени|указани)\w*|исходн\w+\s+(?:промпт|инструкци)\w*|"
            r"скрыт\w+\s+инструкци\w*)",
        ),
        ("системн", "исходн", "скрыт"),
    ),
    # Ukrainian
    Phrasing(
        "UK",
        "Ukrainian",
        _alt(
            r"\b(?:покажи|виведи|розкрий|повтори|скажи|дай|назви|процитуй)(?:те)?\b"
            + _FILL.format(r"мені|нам|свій|свої|свою|твій|твої|твою|ваш|ваші|вашу|весь|всю|всі|повністю|дослівно")
            + r"(?:системн\w+\s+(?:промпт|підказк|інструкці|повідомленн)\w*|початков\w+\s+інструкці\w*|"
            r"приховані\s+інструкці\w*)",
        ),
        ("системн", "початков", "приховані"),
    ),
    # Polish
    Phrasing(
        "PL",
        "Polish",
        _alt(
            r"\b(?:pokaż|pokażcie|wyświetl|ujawnij|wypisz|podaj|powtórz|zdradź|wydrukuj)\b"
            + _FILL.format(r"mi|nam|swój|swoje|swoją|twój|twoje|twoją|cały|całą|całe|dokładnie")
            + r"(?:prompt\w*\s+systemow\w*|systemow\w+\s+(?:prompt|instrukcj|polece)\w*|instrukcj\w*\s+systemow\w*|"
            r"ukryt\w+\s+instrukcj\w*)",
        ),
        ("systemow", "ukryt"),
    ),
    # Czech
    Phrasing(
        "CS",
        "Czech",
        _alt(
            r"\b(?:ukaž|ukažte|zobraz|zobrazte|prozraď|prozraďte|vypiš|vypište|zopakuj|zopakujte|řekni|řekněte)\b"
            + _FILL.format(r"mi|nám|svůj|své|svou|tvůj|tvé|tvou|celý|celou|celé|přesně")
            + r"(?:systémov\w+\s+(?:prompt|pokyn|instrukc|zpráv)\w*|prompt\w*\s+systému|"
            r"skryt\w+\s+(?:pokyn|instrukc)\w*)",
        ),
        ("systémov", "systému", "skryt"),
    ),
    # Dutch
    Phrasing(
        "NL",
        "Dutch",
        _alt(
            r"\b(?:toon|laat|geef|herhaal|onthul|print)\b"
            + _FILL.format(r"me|mij|ons|je|jouw|uw|de|het|volledige|hele|exacte|letterlijk")
            + r"(?:systeemprompt|systeem-prompt|systeeminstructies|systeembericht|verborgen\s+instructies|"
            r"oorspronkelijke\s+instructies)\b",
        ),
        ("systeem", "verborgen", "oorspronkelijke"),
    ),
    # Turkish (a definite, possessed object, then the verb)
    Phrasing(
        "TR",
        "Turkish",
        _alt(
            r"\b(?:sistem\s+(?:istemini|isteminizi|talimatlarını|talimatlarınızı|mesajını|mesajınızı|promptunu|"
            r"promptunuzu)|gizli\s+talimatlarını|gizli\s+talimatlarınızı|ilk\s+talimatlarını|ilk\s+talimatlarınızı)"
            r"(?:\W+(?:bana|aynen|tamamen|olduğu\s+gibi|tam))*\W+(?:göster|söyle|paylaş|tekrarla|açıkla|ver|ifşa\s+et|"
            r"yazdır)\w*",
        ),
        ("sistem", "talimat"),
    ),
    # Indonesian / Malay
    Phrasing(
        "ID",
        "Indonesian or Malay",
        _alt(
            r"\b(?:tampilkan|tunjukkan|perlihatkan|ungkapkan|cetak|berikan|ulangi|beritahu(?:kan)?|sebutkan)\b"
            + _FILL.format(r"saya|aku|kepada\s+saya|padaku|seluruh|semua|lengkap")
            + r"(?:prompt\s+sistem|instruksi\s+sistem|pesan\s+sistem|perintah\s+sistem|instruksi\s+(?:awal|tersembunyi|"
            r"rahasia))\b",
        ),
        ("sistem", "instruksi"),
    ),
    # Vietnamese
    Phrasing(
        "VI",
        "Vietnamese",
        _alt(
            r"\b(?:hiển\s+thị|cho\s+(?:tôi|mình)\s+xem|tiết\s+lộ|in\s+ra|nói\s+cho\s+(?:tôi|mình)(?:\s+biết)?|lặp\s+lại)"
            + _FILL.format(r"toàn\s+bộ|tất\s+cả|các|những|nguyên\s+văn")
            + r"(?:lời\s+nhắc\s+hệ\s+thống|prompt\s+hệ\s+thống|chỉ\s+dẫn\s+hệ\s+thống|hướng\s+dẫn\s+hệ\s+thống|"
            r"thông\s+điệp\s+hệ\s+thống|chỉ\s+thị\s+hệ\s+thống)\b",
        ),
        ("hệ thống",),
    ),
    # Arabic
    Phrasing(
        "AR",
        "Arabic",
        _alt(
            r"(?:اكشف|اكشفي|أظهر|اظهر|اعرض|اطبع|أعطني|اعطني|كرر|أخبرني|اخبرني|قل\s+لي)\W+(?:عن\W+)?"
            r"(?:(?:كل|كامل|جميع)\W+)?(?:موجه\s+النظام|تعليمات\s+النظام|رسالة\s+النظام|التعليمات\s+(?:الأولية|المخفية|"
            r"السرية|الأصلية)|موجهك|تعليماتك\s+(?:الأولية|المخفية|السرية|الأصلية))",
        ),
        ("النظام", "موجهك", "تعليماتك", "التعليمات"),
    ),
    # Hindi: "your system prompt", then "show / tell / reveal"
    Phrasing(
        "HI",
        "Hindi",
        _alt(
            r"(?:अपना|अपने|अपनी|तुम्हारा|तुम्हारे|आपका|आपके)\s+(?:पूरा\s+)?(?:सिस्टम\s+प्रॉम्प्ट|सिस्टम\s+प्रोम्प्ट|"
            r"सिस्टम\s+निर्देश|सिस्टम\s+संदेश|छिपे\s+हुए\s+निर्देश|मूल\s+निर्देश).{0,16}?(?:दिखा|बता|प्रकट|दोहरा|प्रिंट)",
        ),
        ("सिस्टम", "निर्देश"),
    ),
    # Chinese: the verb, then (your) system prompt directly
    Phrasing(
        "ZH",
        "Chinese",
        _alt(
            r"(?:显示|顯示|告诉我|告訴我|输出|輸出|打印|透露|泄露|洩露|重复|重複|给我看|給我看|展示|说出|說出|列出|公开|公開)"
            r"(?:一下)?(?:你的|你们的|您的|完整的|全部的|所有的|你)*"
            r"(?:系统提示|系統提示|系统指令|系統指令|系统消息|系統訊息|系统设定|系統設定|初始指令|初始提示|隐藏指令|隱藏指令)",
        ),
        ("系统", "系統", "初始", "隐藏", "隱藏"),
    ),
    # Japanese: the system prompt as the object (を), then the verb
    Phrasing(
        "JA",
        "Japanese",
        _alt(
            r"(?:システムプロンプト|システム指示|システムメッセージ|初期指示|初期プロンプト|隠された指示|隠し指示)"
            r"(?:を|の内容を|を全て|をすべて|を全部|をそのまま)(?:全て|すべて|そのまま)?"
            r"(?:表示|教え|見せ|出力|書き出|繰り返|開示|公開)",
        ),
        ("システム", "初期", "隠"),
    ),
    # Korean: the system prompt as the object, then the verb
    Phrasing(
        "KO",
        "Korean",
        _alt(
            r"(?:시스템\s*프롬프트|시스템\s*지시(?:사항)?|시스템\s*메시지|초기\s*지시(?:사항)?|숨겨진\s*지시(?:사항)?)"
            r"(?:를|을|의\s*내용을)?\s*(?:전부|모두|그대로|다)?\s*(?:보여|알려|출력|공개|반복|말해)",
        ),
        ("시스템", "초기", "숨겨진"),
    ),
)
