"""Format-conversion, extraction and classification tasks (numerals, times, dates, sentence parts, yes/no labels)."""

from __future__ import annotations

import random

try:
    from .primitives import WORDS, Gen, number_words, pair, token
except ImportError:  # run as a script from this folder
    from primitives import WORDS, Gen, number_words, pair, token

_ROMAN = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
]
_MONTHS = "January February March April May June July August September October November December".split()
_VOWELS = "aeiou"


def _roman(n: int) -> str:
    out = []
    for value, sym in _ROMAN:
        k, n = divmod(n, value)
        out.append(sym * k)
    return "".join(out)


def _ymd(rng: random.Random) -> tuple[int, int, int]:
    """Same date range as the existing ``date_format`` task (days 1..28 are valid in every month)."""
    return rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)


def _iso(y: int, m: int, d: int) -> str:
    return f"{y}-{m:02d}-{d:02d}"


def _clock(rng: random.Random) -> tuple[int, int, str, str]:
    """A time of day as (hour 0..23, minute, 24-hour ``HH:MM``, 12-hour ``H:MM AM|PM``)."""
    h, m = rng.randint(0, 23), rng.randint(0, 59)
    h12 = h % 12 or 12
    return h, m, f"{h:02d}:{m:02d}", f"{h12}:{m:02d} {'AM' if h < 12 else 'PM'}"


def _time_24_to_12(rng: random.Random) -> tuple[str, str]:
    _, _, t24, t12 = _clock(rng)
    return t24, t12


def _time_12_to_24(rng: random.Random) -> tuple[str, str]:
    _, _, t24, t12 = _clock(rng)
    return t12, t24


# --- extraction --------------------------------------------------------------------------------------------

_YEAR_FRAMES = [
    "In {y}, my grandfather bought {a} goats.",
    "The bridge was built in {y} by {a} workers.",
    "She turned {a} in {y} and moved to a new town.",
    "Back in {y}, the club had only {a} members and {b} tables.",
    "We planted {a} trees in {y}, and {b} of them survived.",
    "The museum opened in {y} with {a} rooms.",
    "Around {y}, {a} ships left this harbor every week.",
    "My sister was {a} years old in {y}.",
    "About {a} people came to the first festival in {y}.",
    "The team won {a} games in {y} but lost {b}.",
    "By {y} the village had {a} shops and {b} schools.",
    "He ran {a} miles a day during the summer of {y}.",
    "Our school bus carried {a} children in {y}, and {b} teachers rode along.",
    "The old map from {y} shows {a} wells.",
]
_COLORS = "red blue green yellow orange purple pink brown black white gray gold silver".split()
_COLOR_NOUNS = (
    "car hat door kite ball box cup bag chair scarf bike shirt lamp vase boat pen book shoe sofa coat "
    "balloon bucket mug candle blanket curtain fence truck bottle bench"
).split()
_COLOR_FRAMES = [
    "The {c} {n} is on the table.",
    "She bought a {c} {n} at the market.",
    "Her {n} was painted {c} last spring.",
    "I would like the {n} in {c}, please.",
    "Somebody left a {c} {n} near the gate.",
    "My uncle keeps his {c} {n} in the garage.",
    "We found an old {c} {n} in the attic.",
    "The {n} turned {c} after the rain.",
    "Please hand me that {c} {n} over there.",
    "His favorite {n} is the {c} one.",
    "Yesterday the kids drew a {c} {n}.",
    "A small {c} {n} was sitting by the window.",
]
_NAMES = (
    "Olivia Liam Emma Noah Ava Lucas Mia Ethan Sofia Oscar Chloe Henry Grace Jack Ruby Leo Alice Samuel "
    "Nora Daniel Lily Oliver Zoe Adam Clara Felix Hannah Isaac Maya Victor Julia Peter Laura Simon Emily "
    "Martin Rosa Hugo Ella Tom"
).split()
_NAME_FRAMES = [
    "{N} found the {w} in the garden.",
    "Yesterday {N} painted the {w}.",
    "The {w} was a gift from {N}.",
    "My neighbour {N} keeps the {w} on the porch.",
    "Have you seen the {w} that {N} bought?",
    "After lunch, {N} carried the {w} upstairs.",
    "Nobody expected {N} to forget the {w}.",
    "We gave the old {w} to {N} last week.",
    "According to the teacher, {N} drew the {w}.",
    "Somewhere in the house, {N} hid the {w}.",
    "The kids laughed when {N} dropped the {w}.",
    "On Sunday my cousin {N} sold the {w}.",
]
_USERS = (
    "anna ben carla david emma frank grace hugo iris jack kate leo mila nick olga paul rita sam tina "
    "victor wendy yuri zara omar lucy max nina ivan"
).split()
_SURNAMES = "smith jones brown lee khan garcia novak silva meyer rossi kim clark young wood hall".split()
_DOMAINS = "example.com mail.org inbox.net post.io webmail.com company.co school.edu office.net".split()
_EMAIL_FRAMES = [
    "Please send the files to {e} before Friday.",
    "You can reach me at {e} any time.",
    "My new address is {e}, so update your contacts.",
    "Write to {e} if you have questions.",
    "The invoice came from {e} this morning.",
    "Forward the message to {e} and wait for a reply.",
    "Contact {e} about the tickets.",
    "She signed up with {e} last year.",
    "Replies should go to {e} from now on.",
    "I got a strange note from {e} yesterday.",
    "Add {e} to the mailing list, please.",
    "Our support team answers from {e} on weekdays.",
]


def _year(rng: random.Random) -> tuple[str, str]:
    y = rng.randint(1800, 2029)
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return rng.choice(_YEAR_FRAMES).format(y=y, a=a, b=b), str(y)


def _email(rng: random.Random) -> tuple[str, str]:
    user, last = rng.choice(_USERS), rng.choice(_SURNAMES)
    local = rng.choice(
        [user, f"{user}.{last}", f"{user}_{last}", f"{user}{rng.randint(1, 99)}", user[0] + last]
    )
    e = f"{local}@{rng.choice(_DOMAINS)}"
    return rng.choice(_EMAIL_FRAMES).format(e=e), e


def _color(rng: random.Random) -> tuple[str, str]:
    c = rng.choice(_COLORS)
    text = rng.choice(_COLOR_FRAMES).format(c=c, n=rng.choice(_COLOR_NOUNS))
    return text.replace(" a orange", " an orange"), c


_NAME_NOUNS = [w for w in WORDS if w not in {"orange", "silver", "yellow", "ivory", "rose", "ginger"}]


def _name(rng: random.Random) -> tuple[str, str]:
    n = rng.choice(_NAMES)
    return rng.choice(_NAME_FRAMES).format(N=n, w=rng.choice(_NAME_NOUNS)), n


# --- classification ----------------------------------------------------------------------------------------

_REAL_PALINDROMES = (
    "level radar civic kayak refer madam noon rotor stats tenet racecar deified solos sagas reviver redder "
    "minim wow pop peep deed toot gag did eye nun pip sees"
).split()


def _made_up_palindrome(rng: random.Random) -> str:
    half = "".join(rng.choice("bdfgklmnprstvz" if k % 2 == 0 else _VOWELS) for k in range(rng.randint(2, 4)))
    return half + (half[::-1] if rng.random() < 0.5 else half[-2::-1])


def _palindrome(rng: random.Random) -> tuple[str, str]:
    """Half palindromes (real or made up), half not (ordinary tokens or palindromes with one letter changed)."""
    if rng.random() < 0.5:
        w = rng.choice(_REAL_PALINDROMES) if rng.random() < 0.15 else _made_up_palindrome(rng)
        return w, "yes"
    while True:
        if rng.random() < 0.5:
            w = token(rng)
        else:
            p = list(_made_up_palindrome(rng))
            i = rng.randrange(len(p))
            p[i] = rng.choice([c for c in "abdeiklmnoprstu" if c != p[i]])
            w = "".join(p)
        if w != w[::-1]:
            return w, "no"


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % k for k in range(2, int(n**0.5) + 1))


def _prime(rng: random.Random) -> tuple[str, str]:
    """A number in 2..999; primes are drawn 60% of the time because repeats (only 168 primes) get redrawn."""
    want = rng.random() < 0.6
    while True:
        n = rng.randint(2, 999)
        if _is_prime(n) == want:
            return str(n), "yes" if want else "no"


_PLACES = "kitchen garden office park garage attic library station market hallway".split()
_QUESTIONS = [
    "Did you see the {n} in the {p}?",
    "Where is the {n} that was in the {p}?",
    "Have you cleaned the {n} yet?",
    "Why did they leave the {n} in the {p}?",
    "Can you bring the {n} to the {p}, please?",
    "Is the {n} still in the {p}?",
    "What happened to the {n} after the party?",
    "Who moved the {n} out of the {p}?",
    "You left the {n} in the {p}?",
    "So, shall we take the {n} to the {p}?",
    "How heavy is the {n}, honestly?",
    "Wait, is that the {n} from the {p}?",
    "Would it be okay to borrow the {n}?",
    "Which {p} did you hide the {n} in?",
    "Do you know where the {n} went?",
    "The {n} is broken again, isn't it?",
]
_STATEMENTS = [
    "I wonder where the {n} went.",
    "She asked who moved the {n} out of the {p}.",
    "The {n} is still in the {p}.",
    "Tell me why the {n} is in the {p}.",
    "What a lovely {n} that is!",
    "How strange, the {n} disappeared from the {p}!",
    "Please put the {n} back in the {p}.",
    "Nobody knows where the {n} came from.",
    "We left the {n} in the {p} yesterday.",
    "Do not move the {n} out of the {p}!",
    "Whoever took the {n} should return it to the {p}.",
    "Where the {n} is, nobody can say.",
    "Which {n} you choose does not matter.",
    "Wow, the {n} looks great in the {p}!",
    "He asked me, quietly, whether the {n} was in the {p}.",
    "Ask the guard whether the {n} is still in the {p}.",
]


def _question(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(["question", "statement"])
    frames = _QUESTIONS if label == "question" else _STATEMENTS
    return rng.choice(frames).format(n=rng.choice(_NAME_NOUNS), p=rng.choice(_PLACES)), label


_CATEGORIES = {
    "animal": (
        "tiger lion zebra giraffe rabbit horse donkey monkey camel wolf bear fox deer goat sheep cow pig duck "
        "goose parrot eagle owl dolphin whale shark frog turtle snake mouse squirrel elephant"
    ),
    "food": (
        "bread cheese apple banana carrot potato rice pasta soup pizza sandwich cookie cake pie omelette salad "
        "noodles tomato cucumber onion pear grape melon yogurt muffin pancake sausage steak burger waffle"
    ),
    "vehicle": (
        "car bus truck bicycle motorcycle train tram scooter van taxi tractor ambulance helicopter airplane "
        "boat ship canoe yacht submarine jeep limousine minivan ferry rocket sled wagon kayak skateboard "
        "trolley bulldozer"
    ),
    "clothing": (
        "shirt jacket coat sweater scarf glove hat cap sock shoe boot sandal dress skirt blouse jeans trousers "
        "shorts vest hoodie belt tie pajamas raincoat cardigan slipper mitten tuxedo apron overalls"
    ),
}
_ADJECTIVES = (
    "big small old new little large tiny huge nice cheap fancy plain shiny dusty clean spare favorite "
    "ordinary strange expensive"
).split()


def _category(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(sorted(_CATEGORIES))
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_CATEGORIES[label].split())}", label


def _vowel_token(rng: random.Random) -> str:
    """A real or made-up word whose (starts with a vowel, ends with a vowel) pattern is uniform over 4 cases."""
    start, end = rng.random() < 0.5, rng.random() < 0.5
    while True:
        w = token(rng)
        if rng.random() < 0.5 and w[0] not in _VOWELS:
            w = rng.choice(_VOWELS) + w
        if (w[0] in _VOWELS) == start and (w[-1] in _VOWELS) == end:
            return w


def _compare(rng: random.Random) -> tuple[str, str]:
    while True:
        a, b = pair(rng, 10, 99)
        if a != b:
            return f"{a} {b}", "first" if a > b else "second"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


TASKS: dict[str, Gen] = {
    "int_to_roman": lambda rng: (str(n := rng.randint(1, 500)), _roman(n)),
    "roman_to_int": lambda rng: (_roman(n := rng.randint(1, 500)), str(n)),
    "decimal_to_binary": lambda rng: (str(n := rng.randint(0, 511)), format(n, "b")),
    "binary_to_decimal": lambda rng: (format(n := rng.randint(0, 511), "b"), str(n)),
    "words_to_number": lambda rng: (number_words(n := rng.randint(0, 999)), str(n)),
    "time_24_to_12": _time_24_to_12,
    "time_12_to_24": _time_12_to_24,
    "date_to_us": lambda rng: (_iso(*(d := _ymd(rng))), f"{d[1]:02d}/{d[2]:02d}/{d[0]}"),
    "date_to_words": lambda rng: (_iso(*(d := _ymd(rng))), f"{_MONTHS[d[1] - 1]} {d[2]}, {d[0]}"),
    "extract_year": _year,
    "extract_email": _email,
    "extract_color": _color,
    "extract_name": _name,
    "is_palindrome": _palindrome,
    "is_prime": _prime,
    "question_or_statement": _question,
    "word_category": _category,
    "compare_numbers": _compare,
    "starts_with_vowel": lambda rng: (w := _vowel_token(rng), _yes(w[0] in _VOWELS)),
    "ends_with_vowel": lambda rng: (w := _vowel_token(rng), _yes(w[-1] in _VOWELS)),
}

DESCRIPTIONS: dict[str, list[str]] = {
    "int_to_roman": [
        "Convert the number into Roman numerals.",
        "Write the given integer as a Roman numeral in capital letters.",
        "How would the Romans have written this number? Answer with the numeral only.",
        "Given a whole number written in digits, return its Roman numeral form.",
        "Turn the decimal number into uppercase Roman numerals using I, V, X, L, C and D.",
        "Express the integer in Roman notation.",
        "Rewrite the digits as a Roman numeral, using subtractive pairs where they are needed.",
        "Translate this Arabic numeral into the Roman system.",
        "What is the Roman numeral for the number shown?",
        "Output the Roman-numeral spelling of the input number.",
        "Please give me this number the way it would appear on a clock face or a monument, in Roman numerals.",
        "Change the number from ordinary digits to Roman numerals.",
        "Encode the integer with Roman numeral letters, largest values first.",
        "The input is a positive integer; respond with the equivalent Roman numeral.",
        "Represent the given value in Roman numerals, written in capitals.",
        "Roman numerals, please: convert the number.",
        "Take the decimal integer and produce its standard Roman numeral.",
        "Spell the number using Roman numeral symbols instead of digits.",
        "I need this quantity written as a Roman numeral. What is it?",
        "Map the number to its Roman numeral representation.",
        "Write out the number in the numeral system of ancient Rome.",
        "Return a string of Roman numeral letters whose value equals the input number.",
        "From a number in base ten, build the matching Roman numeral.",
        "Produce the conventional Roman numeral for this integer, in uppercase.",
        "Convert from Arabic digits to Roman letters.",
        "Show the number as a Roman numeral and nothing else.",
        "Digits in, Roman numeral out.",
        "If this number were a chapter heading in an old book, which Roman numeral would it be?",
        "Render the integer in Roman numerals, using the usual subtractive rules.",
        "Give the Roman numeral that stands for the number in the input.",
        "Transform the numeric value into Roman numerals made of the letters I, V, X, L, C and D.",
    ],
    "roman_to_int": [
        "Convert the Roman numeral into an ordinary number.",
        "What number does this Roman numeral represent? Answer in digits.",
        "Read the Roman numeral and return its value as an integer.",
        "Given a Roman numeral, output the equivalent decimal number.",
        "Translate the Roman numeral into Arabic digits.",
        "Decode the Roman numeral and write the result in digits.",
        "Turn the letters of the Roman numeral into the number they stand for.",
        "Evaluate this Roman numeral and report its numeric value.",
        "How much is the Roman numeral worth? Give the answer as a plain number.",
        "The input is written in Roman numerals; rewrite it in base ten.",
        "Convert from Roman notation to regular digits.",
        "Return the integer value of the given Roman numeral.",
        "What is this Roman numeral in normal numbers?",
        "Interpret the Roman numeral, remembering that a smaller letter before a larger one is subtracted, and give its value.",
        "Change the Roman numeral to a decimal integer.",
        "Work out which whole number the Roman letters spell and output it in digits.",
        "Roman numeral in, digits out.",
        "Find the decimal value of the Roman numeral.",
        "Please express this Roman numeral as an Arabic numeral.",
        "Compute the value of the Roman numeral and write it with digits only.",
        "Add up the Roman symbols, applying the subtractive rule, and return the total as a number.",
        "Rewrite the Roman numeral as the number a modern reader would use.",
        "Which integer is written here in Roman numerals?",
        "Parse the Roman numeral and output the number it encodes.",
        "Give the numeric equivalent of the Roman numeral, using digits.",
        "Convert this numeral from the ancient Roman system into our everyday number system.",
        "A chapter is labelled with a Roman numeral; what is its number in digits?",
        "Decipher the Roman numeral and answer with the corresponding integer.",
        "Say what number the Roman numeral stands for, written as digits.",
        "Turn the Roman numeral back into a decimal integer.",
        "Tell me the value of the Roman numeral as a plain integer.",
    ],
    "decimal_to_binary": [
        "Convert the decimal number to binary.",
        "Write the given integer in base two.",
        "What is the binary representation of this number? Answer with ones and zeros.",
        "Given a number in base ten, return the same number written in binary without leading zeros.",
        "Express the integer as a string of 0s and 1s.",
        "Translate the number into binary notation.",
        "Turn the decimal value into its base-2 form.",
        "Output the binary digits of the number, most significant bit first.",
        "Change this number from decimal to binary.",
        "How would a computer write this number in bits? Give the binary string, with no leading zeros.",
        "Represent the integer in the binary number system.",
        "Rewrite the decimal integer using only the digits 0 and 1.",
        "Please convert the input number into binary.",
        "Find the base-two representation of the given value.",
        "Encode the number in binary, starting from the highest set bit.",
        "Decimal in, binary out.",
        "Return the binary form of the number, without any prefix like 0b and without padding.",
        "Show this integer as a binary numeral.",
        "What does the number look like in base 2?",
        "Produce the sequence of bits that represents the decimal number.",
        "Write the number out in binary digits.",
        "Convert from base ten to base two and give the result.",
        "The input is a non-negative decimal integer; answer with its binary equivalent.",
        "Repeatedly divide by two in your head and report the binary representation of the number.",
        "Give me the number in binary, please.",
        "Transform the base-10 value into a base-2 string.",
        "Spell out the number in binary code.",
        "Which string of ones and zeros equals this decimal number?",
        "Turn the integer into bits and write them as one binary number.",
        "Map the decimal number to its binary representation.",
        "Output the integer written in binary notation, with no extra zeros in front.",
    ],
    "binary_to_decimal": [
        "Convert the binary number to decimal.",
        "What is the value of this binary string in base ten?",
        "Given a number written in binary, return it as an ordinary decimal integer.",
        "Translate the ones and zeros into a regular number.",
        "Read the input as base two and output its decimal value.",
        "Change the binary numeral into decimal digits.",
        "Turn this base-2 number into base 10.",
        "How much is this binary number worth in normal digits?",
        "Decode the bits and give the integer they represent.",
        "Evaluate the binary string and report the decimal result.",
        "Binary in, decimal out.",
        "Please convert the input from binary notation to decimal notation.",
        "Interpret the sequence of 0s and 1s as a binary number and write its value in base ten.",
        "Work out which decimal integer these bits encode.",
        "Express the binary value as a decimal number.",
        "Return the base-10 equivalent of the given binary number.",
        "Add up the powers of two marked by the ones and answer with the total.",
        "What number is this in decimal? The input is written in binary.",
        "Rewrite the binary number the way people usually write numbers.",
        "Compute the decimal value of the bit string.",
        "Turn the binary representation back into an ordinary integer.",
        "Find the integer whose binary form is given.",
        "Decode the base-two number and write the answer with decimal digits.",
        "Convert the bits into a base-ten integer.",
        "Tell me the decimal value of this binary numeral.",
        "Parse the input as binary and print the number in decimal.",
        "The string is a number in base 2; give me the same number in base 10.",
        "Go from binary to decimal and answer with the number.",
        "Treat the input as a binary integer and output its value as a decimal integer.",
        "What decimal number do these binary digits stand for?",
        "Map the binary string to its numeric value in base ten.",
    ],
    "words_to_number": [
        "Convert the number written in words into digits.",
        "The input spells out a number in English; write it as a numeral.",
        "What number is written here? Answer with digits.",
        "Turn the English words into the corresponding integer.",
        "Given a number spelled out in words, return it in digits.",
        "Rewrite the spelled-out number using numerals.",
        "Read the words and output the number they describe.",
        "Change the words into a number, written with digits only.",
        "Translate the English number name into Arabic digits.",
        "Express the worded number as digits.",
        "Words in, digits out.",
        "Which integer do these words name? Give it as a numeral.",
        "Please write this number with figures instead of letters.",
        "Decode the English text into the numeric value it spells.",
        "Convert from written-out form to digit form.",
        "Parse the number words and answer with the integer.",
        "Someone wrote a number out in full; turn it back into digits.",
        "Return the value of the spelled-out number as a plain integer.",
        "Give the numeral that matches the English words.",
        "Turn the phrase naming a number into that number, in digits.",
        "How would you write this number using digits?",
        "Find the numeric form of the number written in words.",
        "Replace the English number words with the number itself, written as digits.",
        "Convert the cheque-style written amount into a figure.",
        "The text names a whole number in English words; output it in digits.",
        "Write the digits for the number that is spelled out.",
        "Go from the English name of the number to its numeral.",
        "Interpret the words as a number and print that number.",
        "Tell me the number in digits that these words spell.",
        "Transform the spelled-out English number into an integer.",
        "Output the figure that the English words describe.",
    ],
    "time_24_to_12": [
        "Convert the 24-hour time to 12-hour time with AM or PM.",
        "Rewrite the time in 12-hour format: the hour without a leading zero, a colon, the minutes, a space and AM or PM in capitals.",
        "Given a time on the 24-hour clock, return it on the 12-hour clock followed by AM or PM.",
        "What is this military time in ordinary AM/PM notation?",
        "Change the time from 24-hour format to the 12-hour format used in the US, ending with AM or PM.",
        "Turn the HH:MM time into a 12-hour clock time with an uppercase AM or PM suffix.",
        "Express the time using the 12-hour clock. Drop any leading zero from the hour and add AM or PM.",
        "Translate the 24-hour clock reading into am/pm style, writing AM or PM in capital letters.",
        "Please convert this time to the twelve-hour format, with AM before noon and PM from noon on.",
        "Format the time as hour:minutes followed by a space and AM or PM.",
        "Take a time written as two-digit hours and minutes on a 24-hour clock and return the 12-hour version with AM or PM.",
        "How would you say this 24-hour time on a 12-hour clock? Write it like hour:minutes AM or hour:minutes PM.",
        "Switch the time from the 24-hour system to the 12-hour system; midnight hour becomes 12 AM and noon hour becomes 12 PM.",
        "Output the 12-hour equivalent of the given time, with capital AM or PM at the end.",
        "24-hour time in, 12-hour time with AM/PM out.",
        "Rewrite the clock time so it uses AM and PM instead of hours past twelve.",
        "Convert the time to the format people use on analog clocks, adding AM or PM in uppercase.",
        "The input is a time like the ones on train timetables; give the same time in 12-hour form with AM or PM.",
        "Change the time to AM/PM format, keeping the minutes as two digits and the hour without a leading zero.",
        "Read the 24-hour time and write it back as a 12-hour time plus AM or PM.",
        "Give the time in 12-hour notation; subtract twelve from afternoon hours and mark them PM.",
        "Turn this time into the twelve-hour clock format, ending with AM or PM written in capitals.",
        "What time is it on a 12-hour clock? Include AM or PM.",
        "Reformat the 24-hour timestamp as an AM/PM time.",
        "Present the given time the way Americans usually write it, with the hour, minutes and AM or PM.",
        "Map the time from round-the-clock hours to 12-hour style with an uppercase AM or PM.",
        "Convert from military time to civilian time with AM or PM.",
        "I have a time in 24-hour format; return it as hours and minutes on a 12-hour clock with AM or PM after a space.",
        "Write the time using a 12-hour clock and the labels AM and PM.",
        "Change the 24-hour clock time into a 12-hour clock time followed by AM or PM in capitals.",
        "Restate the time in 12-hour form, no leading zero on the hour, and finish with AM or PM.",
    ],
    "time_12_to_24": [
        "Convert the 12-hour time with AM or PM into 24-hour time.",
        "Rewrite the time on the 24-hour clock as HH:MM with two digits for the hour.",
        "Given a time with AM or PM, return it in 24-hour format.",
        "What is this AM/PM time in military time? Answer as HH:MM.",
        "Change the time from 12-hour format to the 24-hour format, padding the hour with a leading zero if needed.",
        "Turn the AM/PM time into a 24-hour clock time with two-digit hours and minutes separated by a colon.",
        "Express the time on the 24-hour clock, dropping the AM or PM.",
        "Translate the time into 24-hour notation: add twelve to PM hours, and 12 AM becomes hour 00.",
        "Please convert this time to the twenty-four-hour format.",
        "Format the time as HH:MM in 24-hour style.",
        "Take a time written with AM or PM and return the 24-hour version.",
        "How would this time appear on a train timetable? Give it as two-digit hours, a colon and minutes.",
        "Switch the time from the 12-hour system to the 24-hour system.",
        "Output the 24-hour equivalent of the given time, with no AM or PM.",
        "12-hour time in, 24-hour time out.",
        "Rewrite the clock time so afternoon and evening hours go past twelve instead of using PM.",
        "Convert to military time, always writing the hour with two digits.",
        "The input is a time with an AM or PM marker; give the same time on the 24-hour clock.",
        "Change the time to HH:MM, where HH runs from 00 to 23.",
        "Read the AM/PM time and write it back as a 24-hour time.",
        "Give the time in 24-hour notation; noon stays at 12 and midnight becomes 00.",
        "Turn this time into the twenty-four-hour clock format with a zero-padded hour.",
        "What time is it on a 24-hour clock? Write hours and minutes as two digits each.",
        "Reformat the AM/PM timestamp as a 24-hour time.",
        "Present the given time the way most of Europe writes it, as HH:MM without AM or PM.",
        "Map the time from 12-hour style with AM/PM to 24-hour style.",
        "Convert from civilian time to military time.",
        "I have a time with AM or PM; return it as a 24-hour HH:MM time.",
        "Write the time using a 24-hour clock, removing the AM or PM.",
        "Change the 12-hour clock time into a 24-hour clock time with two digits on each side of the colon.",
        "Restate the time in 24-hour form so that no AM or PM is needed.",
    ],
    "date_to_us": [
        "Convert the date from YYYY-MM-DD to MM/DD/YYYY.",
        "Rewrite the ISO date in the American month/day/year format with slashes.",
        "Change the date so the month comes first, then the day, then the year, separated by slashes.",
        "Given a year-month-day date, return it as month/day/year with two-digit month and day.",
        "Write the date in US style: MM/DD/YYYY.",
        "Turn the ISO 8601 date into the format used in the United States.",
        "Reformat the date as month, day and four-digit year, joined with slashes.",
        "How would an American write this date? Use MM/DD/YYYY with leading zeros.",
        "Put the month first: convert the dashed date to a slashed month/day/year date.",
        "Please give me this date in the MM/DD/YYYY format.",
        "The input is a date like those in databases; output it in American notation.",
        "Swap the date into US order, month before day, with the year last.",
        "Return the same date written as two-digit month, slash, two-digit day, slash, year.",
        "Convert year-month-day into month/day/year.",
        "ISO date in, US date out.",
        "Reorder the parts of the date to month, day, year and separate them with slashes.",
        "Express the given date the way it appears on an American form.",
        "Change the dashes to slashes and move the year to the end, keeping the month before the day.",
        "What is this date in month/day/year notation?",
        "Transform the YYYY-MM-DD string into MM/DD/YYYY, keeping leading zeros.",
        "Rewrite the date for a US reader, month first.",
        "Take a date written as year-month-day and output it in American style with slashes.",
        "Format the date the US way, so the month is followed by the day and then the full year.",
        "Give the date as MM/DD/YYYY; do not put the day first.",
        "Convert the international date format into the American date format.",
        "Show this date in the order month, day, year, using slashes between the parts.",
        "Produce the US-style slashed version of the ISO date.",
        "Restate the date in month/day/year order, padding month and day to two digits.",
        "I need the date in American format. Convert it from the dashed year-first form.",
        "Switch the date from year-first notation to month-first notation with slashes.",
        "Make the date read month, then day, then year, all separated by forward slashes.",
    ],
    "date_to_words": [
        "Write the date out with the month name, like you would in a letter.",
        "Convert the YYYY-MM-DD date into the form Month D, YYYY, with the month spelled out.",
        "Rewrite the ISO date as the full month name, the day without a leading zero, a comma and the year.",
        "Given a year-month-day date, return it in words-and-numbers style with the month name first.",
        "How would you write this date in an English sentence? Spell the month and put a comma before the year.",
        "Turn the numeric date into a long date with the English month name.",
        "Spell out the month: format the date as month name, day, comma, year.",
        "Change the dashed date into a readable date such as one printed on an invitation.",
        "Express the date using the name of the month instead of its number.",
        "Please write this date in long form, American order, with the full month name.",
        "Format the date as the month's name followed by the day number, a comma and the four-digit year.",
        "Numeric date in, written-out date out.",
        "The input is an ISO date; output it with the month written as a word.",
        "Return the same date in the style used at the top of a letter, month name first.",
        "Convert the date to long format: capitalised month name, day, comma, year.",
        "Replace the month number with the month name and rearrange the date as month, day, year.",
        "What is this date when written out with the English month name?",
        "Reformat the date to be human-friendly, with the month spelled in full and no leading zero on the day.",
        "Write the date with words for the month, not digits or slashes.",
        "Take a date like those in spreadsheets and express it as a long English date.",
        "Render the year-month-day date as month name, day, then the year after a comma.",
        "Name the month and give the day and year, in the order used in American English.",
        "Show this date the way a newspaper would print it, with the full month name.",
        "Translate the numeric date into a textual date with the month's English name.",
        "Give the long form of the date: full month name, day number, comma, full year.",
        "Convert the ISO 8601 date into a written date that begins with the month's name.",
        "Make the date easier to read by spelling out the month and putting the year at the end after a comma.",
        "Rewrite the date for a formal letter, month name first and the year last.",
        "Turn the digits of the date into an English long date.",
        "Produce the written form of the date with the month in words.",
        "Output the date as the English month name, the day of the month as a plain number, a comma and the year.",
    ],
    "extract_year": [
        "Find the year mentioned in the sentence and return it.",
        "Which year does the text refer to? Answer with the four-digit year.",
        "Extract the four-digit year from the sentence, ignoring any other numbers.",
        "The sentence contains a year and some smaller numbers; output only the year.",
        "Pull out the year from the text.",
        "Return the calendar year that appears in the sentence.",
        "In what year did this happen, according to the sentence?",
        "Identify the year in the input and give it as four digits.",
        "Ignore the counts and ages; report just the year that is mentioned.",
        "Given a sentence, output the number that is a year.",
        "Look for the four-digit number in the text and return it.",
        "What year is named in the sentence?",
        "Copy the year out of the sentence, and nothing else.",
        "There is exactly one year in this text. Which one is it?",
        "Extract the date's year from the sentence; the other numbers are distractors.",
        "Tell me the year the sentence talks about.",
        "Read the sentence and give back the year it contains, written as digits.",
        "Locate the year among the numbers in the sentence and output it.",
        "Return the year only, not any of the other quantities in the text.",
        "Please find the year in this sentence.",
        "Spot the four-digit year and answer with it.",
        "Which number in the sentence is a year? Reply with that number.",
        "Output the year referenced in the text, leaving out the small numbers.",
        "The text mentions when something happened. Give the year.",
        "Get the year out of the sentence.",
        "Skip the amounts and pick out the year from the sentence.",
        "From the sentence, extract the year, a number with four digits.",
        "What is the year in the following sentence?",
        "Answer with the year found in the input sentence.",
        "Find and print the year; do not print any other number.",
        "Name the year that this sentence is about.",
    ],
    "extract_email": [
        "Extract the email address from the sentence.",
        "Find the email address in the text and return it exactly.",
        "Which email address is mentioned? Answer with the address only.",
        "Pull out the email address, including the part after the at sign.",
        "The sentence contains one email address; output it.",
        "Return the email address that appears in the text, without the surrounding words.",
        "Copy the email address out of the sentence.",
        "What is the email address in this message?",
        "Identify the address containing an @ symbol and give it back unchanged.",
        "Given a sentence, respond with the email address it contains.",
        "Locate the email address and print it.",
        "Get the full email address, both the user name and the domain, from the sentence.",
        "Please find the email in this text.",
        "Which address should I write to? Give me just the email address.",
        "Extract the contact email from the sentence.",
        "Isolate the email address and drop everything else.",
        "Spot the email address in the input and output it as it is written.",
        "Return only the email address mentioned in the text.",
        "There is an email address hidden in the sentence. What is it?",
        "Find the string that looks like an email address and return it.",
        "Read the sentence and report the email address it mentions.",
        "Tell me the email address from this sentence.",
        "Output the complete email address that appears in the input.",
        "Take the sentence and give back the email address, nothing more.",
        "Grab the email address out of the text.",
        "What email address does the sentence refer to?",
        "Search the text for an email address and answer with it.",
        "Reply with the email address found in the sentence, user part and domain together.",
        "Find the word with the at sign in it and return that whole address.",
        "Extract the address someone could send mail to from the sentence.",
        "Answer with the email contained in the input, exactly as it appears.",
    ],
    "extract_color": [
        "Which colour is mentioned in the sentence? Answer with the colour word.",
        "Find the colour word in the text and return it.",
        "Extract the color from the sentence.",
        "The sentence names one colour; output that colour.",
        "What color is mentioned in this sentence?",
        "Return the word that describes a colour.",
        "Pull out the colour word from the text.",
        "Identify the colour in the sentence and give it as a single word.",
        "Given a sentence, respond with the color it mentions.",
        "Tell me which colour appears in the sentence.",
        "Read the text and report the colour that is named.",
        "Copy out the colour word and nothing else.",
        "Which word in the sentence is a colour?",
        "Spot the color term in the input and answer with it.",
        "Output only the colour mentioned in the sentence.",
        "Please find the colour in this sentence.",
        "Locate the word naming a colour and return it in lower case.",
        "Get the colour out of the sentence.",
        "What colour is the object described in the sentence? Give just the colour.",
        "There is exactly one colour word in the text. Which one?",
        "Extract the color adjective from the sentence.",
        "Answer with the colour that the sentence talks about.",
        "Find the word for a color, whether a shade of the rainbow or a neutral shade, and return it.",
        "Say which colour the text mentions.",
        "Search the sentence for a colour and output that word.",
        "Return the color named in the input text.",
        "From the sentence, pick out the colour word.",
        "Name the colour mentioned in the following sentence.",
        "Which hue does the sentence mention? Reply with one word.",
        "Identify the colour word in the text; ignore the other words.",
        "Give back the colour that appears in the sentence, as one word.",
    ],
    "extract_name": [
        "Find the person's name in the sentence and return it.",
        "Who is mentioned in the sentence? Answer with their first name.",
        "Extract the name of the person from the text.",
        "The sentence mentions one person by first name; output that name, capitalised.",
        "Return the first name that appears in the sentence.",
        "Which person's name is in this sentence?",
        "Pull out the name of the person in the text.",
        "Identify the person named in the sentence and give their name with a capital letter.",
        "Given a sentence, respond with the name of the person it mentions.",
        "Tell me the name of the person in the sentence.",
        "Copy out the personal name and nothing else.",
        "Who is the sentence about? Give just the name.",
        "Spot the proper name of a person in the input and answer with it.",
        "Output only the person's first name from the sentence.",
        "Please find the name in this sentence.",
        "Locate the word that is someone's name and return it, keeping its capital letter.",
        "Get the person's name out of the sentence.",
        "There is exactly one person named in the text. What is their name?",
        "Extract the given name from the sentence, written as it appears.",
        "Answer with the name of the person that the sentence talks about.",
        "Read the text and report the first name mentioned in it.",
        "Search the sentence for a person's name and output it.",
        "Return the name of the individual mentioned in the input text.",
        "From the sentence, pick out the person's name.",
        "Name the person who appears in the following sentence.",
        "Which name does the sentence contain? Reply with that one word.",
        "Find the capitalised first name of a person in the sentence and give it back.",
        "Who is named here? Answer with the name only, starting with a capital letter.",
        "Identify the person's name in the text; ignore objects and places.",
        "Give back the person's name that appears in the sentence.",
        "Output the proper noun that is a person's first name.",
    ],
    "is_palindrome": [
        "Is the word a palindrome? Answer yes or no.",
        "Decide whether the word reads the same forwards and backwards; reply yes or no.",
        "Say yes if the word is spelled identically when reversed, otherwise say no.",
        "Check if the input is a palindrome and answer with yes or no.",
        "Does this word read the same from right to left as from left to right? Yes or no.",
        "Given a single word, answer yes when it is a palindrome and no when it is not.",
        "Tell me whether the letters form a palindrome. Respond with yes or no.",
        "Reverse the word in your head: if it is unchanged answer yes, otherwise answer no.",
        "Palindrome test: output yes or no for the given word.",
        "Would this word look the same if you read it backwards? Reply with yes or no.",
        "Classify the word as a palindrome (yes) or not a palindrome (no).",
        "Answer yes if the first letter matches the last, the second matches the second to last, and so on all the way through; otherwise answer no.",
        "Is this token symmetric, reading identically in both directions? Say yes or no.",
        "Determine whether the input string is a palindrome; the answer is either yes or no.",
        "Respond yes for palindromes and no for everything else.",
        "Compare the word with its reversal and answer yes if they are equal, no if they differ.",
        "Yes or no: is the given word a palindrome?",
        "Check whether the spelling is symmetric from end to end and reply with yes or no.",
        "Does the word stay the same when its letters are put in reverse order? Answer yes or no.",
        "Please tell me if this is a palindrome, using only yes or no.",
        "Output yes when the word is its own reverse; output no otherwise.",
        "Decide if the word is a palindrome, even if it is a made-up word, and answer yes or no.",
        "Is the sequence of letters the same backwards? Give a one-word answer, yes or no.",
        "Judge whether the given word is palindromic. Reply yes or no.",
        "Say whether reading the word from the end gives the same word, answering yes or no.",
        "Return yes if the input reads the same in both directions and no if it does not.",
        "A palindrome reads the same backwards as forwards. Is this word one? Yes or no.",
        "Examine the spelling and report yes for a palindrome, no for a non-palindrome.",
        "Could this word be read backwards without changing? Reply yes or no.",
        "Test the word: palindrome means yes, anything else means no.",
        "Answer with yes or no: is the word identical to itself spelled backwards, letter by letter?",
    ],
    "is_prime": [
        "Is the number prime? Answer yes or no.",
        "Decide whether the integer is a prime number; reply yes or no.",
        "Say yes if the number has no divisors other than one and itself, otherwise say no.",
        "Check if the input is prime and answer with yes or no.",
        "Given a whole number, answer yes when it is prime and no when it is composite.",
        "Primality test: output yes or no for the given number.",
        "Tell me whether this number is a prime. Respond with yes or no.",
        "Classify the integer as prime (yes) or not prime (no).",
        "Can the number be divided evenly by anything besides one and itself? If not, answer yes; if it can, answer no.",
        "Yes or no: is the given integer prime?",
        "Respond yes for prime numbers and no for all other numbers.",
        "Determine whether the input number is prime; the answer is either yes or no.",
        "Does this number have exactly two divisors? Reply yes or no.",
        "Please tell me if this is a prime number, using only yes or no.",
        "Output yes when the number is prime; output no otherwise.",
        "Is this integer a prime? Give a one-word answer, yes or no.",
        "Judge whether the given number is prime. Reply yes or no.",
        "Return yes if the number is prime and no if it can be factored into smaller whole numbers.",
        "A prime is only divisible by one and itself. Is this number one? Yes or no.",
        "Examine the number and report yes for a prime, no for a composite.",
        "Could the number be written as a product of two smaller whole numbers greater than one? If so answer no, otherwise answer yes.",
        "Test the number: prime means yes, anything else means no.",
        "Answer with yes or no: is the number a prime number?",
        "Figure out whether the integer is prime and answer yes or no.",
        "Check the number for primality and reply with a plain yes or no.",
        "Is the given value a prime number or not? Say yes or no.",
        "Decide if the number is prime, answering yes or no and nothing else.",
        "Look for factors of the number; if there are none besides one and itself, say yes, else say no.",
        "Would a mathematician call this number prime? Respond yes or no.",
        "Label the integer yes if it is prime and no if it is composite.",
        "Answer yes for a prime input and no for a non-prime input.",
    ],
    "question_or_statement": [
        "Is the sentence a question or a statement? Answer question or statement.",
        "Classify the sentence as a question or a statement.",
        "Decide whether the text asks something or tells something; reply with question or statement.",
        "Label the input: question if it asks for an answer, statement otherwise.",
        "Does this sentence ask a question? Respond with question or statement.",
        "Say question if the sentence is a question and statement if it is not.",
        "Determine the sentence type, answering with either question or statement.",
        "Given a sentence, output question when it is interrogative and statement when it is declarative, imperative or exclamatory.",
        "Is this a question or a statement?",
        "Tell me whether the sentence is a question or a statement, in one word.",
        "Classify the text into one of two labels: question, statement.",
        "Question or statement? Decide for the given sentence.",
        "Return question for sentences that ask something and end with a question mark, statement for all others.",
        "Identify whether the input is asking or stating, and answer question or statement.",
        "Reply question if the sentence requests an answer; reply statement if it just says something.",
        "Work out whether the text is a question or a statement, even when it contains words like where or who.",
        "Which kind of sentence is this, a question or a statement? Answer with that word.",
        "Categorise the sentence as question or statement.",
        "Please label this sentence with question or statement.",
        "Decide if someone is asking something here. Answer question if so, otherwise statement.",
        "Is the speaker asking or telling? Reply question or statement.",
        "Output statement for declarations, commands and exclamations, and question for questions.",
        "Determine whether this line of text is a question; answer question or statement.",
        "Sort the sentence into question or statement.",
        "Does the sentence expect a reply? Say question if it does and statement if it does not.",
        "Answer with exactly one of question or statement for the input sentence.",
        "Choose the label that fits the sentence: question or statement.",
        "Read the sentence and tell me if it is a question or a statement.",
        "Classify the utterance's form: question or statement.",
        "Be careful with indirect questions: say statement unless the sentence itself is a question, then say question.",
        "Mark the sentence as question or statement depending on whether it asks something.",
    ],
    "word_category": [
        "What kind of thing is named: animal, food, vehicle or clothing?",
        "Classify the phrase by the category of its noun: animal, food, vehicle, or clothing.",
        "Decide whether the thing described is an animal, a food, a vehicle or a piece of clothing; answer animal, food, vehicle or clothing.",
        "Label the item with one of four categories: animal, food, vehicle, clothing.",
        "Is this an animal, food, vehicle or clothing? Answer with one of those words.",
        "Given an adjective and a noun, say which category the noun belongs to: animal, food, vehicle, clothing.",
        "Sort the object into animal, food, vehicle or clothing.",
        "Which category fits the noun best, animal, food, vehicle or clothing?",
        "Tell me the category of the thing mentioned, choosing from animal, food, vehicle and clothing.",
        "Categorise the noun: answer animal if it is a creature, food if you eat it, vehicle if you ride or drive it, clothing if you wear it.",
        "Ignore the adjective and classify the noun as animal, food, vehicle or clothing.",
        "Assign one label to the item: animal, food, vehicle, or clothing.",
        "Animal, food, vehicle or clothing? Pick the right category for the phrase.",
        "What type of thing does the phrase refer to? Reply animal, food, vehicle or clothing.",
        "Put the named object into the correct group among animal, food, vehicle and clothing.",
        "Decide the category of the thing: animal, food, vehicle, clothing. Output just the category.",
        "Say whether you would pet it, eat it, ride in it, or wear it, by answering animal, food, vehicle or clothing.",
        "Please classify the item into one of these four categories: animal, food, vehicle, clothing.",
        "Return the semantic category of the noun, which is one of animal, food, vehicle or clothing.",
        "Determine which of the four classes animal, food, vehicle and clothing the thing belongs to.",
        "Read the short phrase and answer with its category: animal, food, vehicle or clothing.",
        "Group the noun under animal, food, vehicle or clothing and give the group name.",
        "Is the thing described a living creature (animal), something to eat (food), a means of transport (vehicle) or something to wear (clothing)?",
        "Choose the label for the object from animal, food, vehicle and clothing.",
        "Identify the category of the thing named in the phrase, using only animal, food, vehicle or clothing.",
        "Which of these is it: animal, food, vehicle or clothing? Answer in one word.",
        "Give the category, animal, food, vehicle or clothing, that the noun in the input falls into.",
        "Classify the described item. Possible answers: animal, food, vehicle, clothing.",
        "Tag the phrase with animal, food, vehicle or clothing according to what the noun is.",
        "Answer animal, food, vehicle or clothing depending on the kind of object named.",
        "What category is the noun in: animal, food, vehicle, or clothing?",
    ],
    "compare_numbers": [
        "Which of the two numbers is larger? Answer first or second.",
        "Compare the two numbers and say first if the first one is bigger, second if the second one is bigger.",
        "Given two different integers, reply with first or second depending on which is greater.",
        "Is the larger number the first or the second one?",
        "Decide which number is bigger and answer with its position: first or second.",
        "Look at the pair of numbers and output first when the left number is greater, second when the right one is.",
        "Tell me whether the first or the second number has the higher value.",
        "Which position holds the maximum, first or second? Answer with that word.",
        "Say first if the first number exceeds the second, otherwise say second.",
        "Of the two numbers, which one is greater? Reply first or second, not the number itself.",
        "Compare the values and name the position of the larger one, first or second.",
        "Output the word first or second to indicate where the bigger number is.",
        "Two numbers are given. Is the bigger one first or second?",
        "Answer first when the number on the left is larger and second when the number on the right is larger.",
        "Find the larger number and report whether it came first or second.",
        "Please tell me which of the two integers is higher, the first or the second.",
        "Greater number: first or second? Decide for the given pair.",
        "Point to the larger number by answering first or second.",
        "Determine which input number is bigger and reply with its place in the pair, first or second.",
        "Which number wins if higher is better, the first or the second?",
        "Check whether the first number is greater than the second; answer first if it is and second if it is not.",
        "Reply with first or second to show which of the two values is larger.",
        "Rank the two numbers and give the position of the top one as first or second.",
        "Between the two numbers, is the larger one in the first place or the second place?",
        "Compare the numbers; the answer is the word first or the word second, naming the bigger one.",
        "Say where the maximum of the pair is: first or second.",
        "Identify which of the pair is greater and respond first or second.",
        "The two numbers are never equal. Which is larger, first or second?",
        "Choose first or second: which number is bigger?",
        "Look at both numbers and tell me if the larger is the first or the second.",
        "Respond with the position, first or second, of the greater of the two integers.",
    ],
    "starts_with_vowel": [
        "Does the word start with a vowel? Answer yes or no.",
        "Say yes if the first letter of the word is a, e, i, o or u, otherwise say no.",
        "Check whether the word begins with a vowel and reply yes or no.",
        "Is the first letter a vowel? Yes or no.",
        "Given a single word, answer yes when its initial letter is a vowel and no when it is a consonant.",
        "Look only at the first letter: vowel means yes, consonant means no.",
        "Tell me whether this word opens with a vowel. Respond with yes or no.",
        "Decide if the word begins with one of the vowels a, e, i, o, u; answer yes or no.",
        "Yes or no: does the given word start with a vowel?",
        "Respond yes for words beginning with a vowel and no for words beginning with a consonant.",
        "Is the word's opening letter a vowel? Give a one-word answer, yes or no.",
        "Output yes if the word starts with a, e, i, o or u; output no otherwise.",
        "Would you write an instead of a before this word because of its first letter? Judge by spelling only: answer yes if it starts with a vowel letter, no otherwise.",
        "Check the initial letter of the word and reply yes if it is a vowel, no if not.",
        "Does the token begin with a vowel letter? Reply yes or no.",
        "Please tell me whether the word starts with a vowel, using only yes or no.",
        "Classify the word by its first letter: yes for a vowel, no for a consonant.",
        "Determine whether the beginning of the word is a vowel; the answer is yes or no.",
        "Examine the first character of the word and say yes if it is a vowel and no otherwise.",
        "Is there a vowel at the very start of this word? Answer yes or no.",
        "Answer yes or no: is the word's first letter one of a, e, i, o, u?",
        "Return yes when the word begins with a vowel and no when it does not.",
        "Does this word, real or made up, start with a vowel? Say yes or no.",
        "Test the first letter of the word: a vowel gives yes, anything else gives no.",
        "Reply yes if the word's first letter is a vowel (y does not count), otherwise reply no.",
        "Starts with a vowel, yes or no?",
        "Judge whether the word begins with a vowel and respond with yes or no.",
        "Focus on how the word starts. If it starts with a vowel answer yes, otherwise answer no.",
        "Say whether the leading letter of the word is a vowel, answering yes or no.",
        "Is the word vowel-initial? Answer yes or no.",
        "Check if the input word's first letter is a, e, i, o or u and answer with yes or no.",
    ],
    "ends_with_vowel": [
        "Does the word end with a vowel? Answer yes or no.",
        "Say yes if the last letter of the word is a, e, i, o or u, otherwise say no.",
        "Check whether the word finishes with a vowel and reply yes or no.",
        "Is the final letter a vowel? Yes or no.",
        "Given a single word, answer yes when its last letter is a vowel and no when it is a consonant.",
        "Look only at the last letter: vowel means yes, consonant means no.",
        "Tell me whether this word closes with a vowel. Respond with yes or no.",
        "Decide if the word ends in one of the vowels a, e, i, o, u; answer yes or no.",
        "Yes or no: does the given word end with a vowel?",
        "Respond yes for words ending in a vowel and no for words ending in a consonant.",
        "Is the word's closing letter a vowel? Give a one-word answer, yes or no.",
        "Output yes if the word ends with a, e, i, o or u; output no otherwise.",
        "Check the final letter of the word and reply yes if it is a vowel, no if not.",
        "Does the token end in a vowel letter? Reply yes or no.",
        "Please tell me whether the word ends with a vowel, using only yes or no.",
        "Classify the word by its last letter: yes for a vowel, no for a consonant.",
        "Determine whether the end of the word is a vowel; the answer is yes or no.",
        "Examine the last character of the word and say yes if it is a vowel and no otherwise.",
        "Is there a vowel at the very end of this word? Answer yes or no.",
        "Answer yes or no: is the word's last letter one of a, e, i, o, u?",
        "Return yes when the word ends in a vowel and no when it does not.",
        "Does this word, real or made up, end with a vowel? Say yes or no.",
        "Test the last letter of the word: a vowel gives yes, anything else gives no.",
        "Reply yes if the word's final letter is a vowel (y does not count), otherwise reply no.",
        "Ends with a vowel, yes or no?",
        "Judge whether the word ends in a vowel and respond with yes or no.",
        "Focus on how the word ends, not how it starts. If it ends with a vowel answer yes, otherwise answer no.",
        "Say whether the trailing letter of the word is a vowel, answering yes or no.",
        "Is the word vowel-final? Answer yes or no.",
        "Check if the input word's last letter is a, e, i, o or u and answer with yes or no.",
        "Ignore the beginning of the word; does its final letter happen to be a vowel? Yes or no.",
    ],
}

CASED: set[str] = {"time_24_to_12", "extract_name"}

PAIRS: list[tuple[str, str]] = [
    ("int_to_roman", "roman_to_int"),
    ("int_to_roman", "number_to_words"),
    ("int_to_roman", "decimal_to_binary"),
    ("decimal_to_binary", "binary_to_decimal"),
    ("roman_to_int", "binary_to_decimal"),
    ("words_to_number", "number_to_words"),
    ("words_to_number", "roman_to_int"),
    ("time_24_to_12", "time_12_to_24"),
    ("date_to_us", "date_format"),
    ("date_to_words", "date_to_us"),
    ("date_to_words", "date_format"),
    ("extract_year", "extract_number"),
    ("extract_email", "extract_name"),
    ("extract_color", "extract_name"),
    ("extract_color", "word_category"),
    ("is_palindrome", "reverse_letters"),
    ("is_prime", "parity"),
    ("question_or_statement", "sentiment"),
    ("word_category", "topic"),
    ("compare_numbers", "max_number"),
    ("compare_numbers", "subtract_two"),
    ("starts_with_vowel", "ends_with_vowel"),
    ("starts_with_vowel", "is_palindrome"),
    ("ends_with_vowel", "count_vowels"),
]
