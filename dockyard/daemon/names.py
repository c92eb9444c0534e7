"""Names for containers created without `--name`: `adjective_surname`, as dockerd makes them.

The surnames honour people of computing and science, like Docker's list
(this one is shorter and our own).
"""

from __future__ import annotations

import random

ADJECTIVES = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful", "blissful",
    "bold", "brave", "busy", "charming", "clever", "compassionate", "competent", "condescending", "confident",
    "cool", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic", "elastic",
    "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant", "focused",
    "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore",
    "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting", "jolly",
    "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying",
    "naughty", "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic",
    "pensive", "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent",
    "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious",
    "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
    "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
)

SURNAMES = (
    "agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata", "babbage", "banach",
    "bardeen", "bartik", "bell", "benz", "bhabha", "blackwell", "bohr", "booth", "borg", "bose", "brahmagupta",
    "brattain", "brown", "carson", "cartwright", "cerf", "chandrasekhar", "chatelet", "clarke", "colden",
    "cori", "curie", "darwin", "davinci", "dijkstra", "dirac", "easley", "einstein", "elion", "engelbart",
    "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "goldberg",
    "goodall", "hamilton", "hawking", "heisenberg", "hertz", "hodgkin", "hoover", "hopper", "hypatia",
    "jackson", "jang", "jennings", "johnson", "kalam", "kare", "keller", "kepler", "khorana", "kilby",
    "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey", "leavitt", "lewin", "liskov",
    "lovelace", "lumiere", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "merkle", "minsky",
    "mirzakhani", "morse", "napier", "nash", "newton", "nobel", "noether", "northcutt", "noyce", "pascal",
    "pasteur", "perlman", "pike", "poincare", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "rosalind",
    "saha", "sammet", "shannon", "shockley", "sinoussi", "snyder", "spence", "stonebraker", "sutherland",
    "swartz", "tesla", "thompson", "torvalds", "turing", "varahamihira", "villani", "volhard", "wescoff",
    "wiles", "williams", "wilson", "wing", "wozniak", "wright", "yalow", "yonath",
)


def random_name(taken, attempts: int = 100) -> str:
    """A name not in `taken` (a container called `boring_wozniak` would not be fair to him)."""
    rng = random.SystemRandom()
    for attempt in range(attempts):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt > 10:
            name += str(rng.randint(0, 99))
        if name == "boring_wozniak" or name in taken:
            continue
        return name
    raise RuntimeError("could not find a free container name")
