#!/usr/bin/env python3
"""Generate the small synthetic English NER corpus used by the demo recipe.

The corpus written by this script is entirely SYNTHETIC and MADE UP for the
seqtag demo recipe.  Every sentence is produced from hand-written templates
filled with invented (or generic, well-known place) names; no text is taken
from CoNLL-2003 or any other licensed corpus.  Any resemblance of the invented
people or organisations to real ones is coincidental.

Output (CoNLL style, 2 columns ``TOKEN TAG``, IOB2 tags PER/LOC/ORG/MISC, one
token per line, a blank line between sentences, no -DOCSTART- lines):

    recipes/demo/train.txt   ~600 sentences
    recipes/demo/valid.txt   ~150 sentences
    recipes/demo/test.txt    ~150 sentences

Tokenisation follows CoNLL-2003: punctuation is its own token, the possessive
"'s" is a separate token, and numbers stay whole ("1,200", "3.5").

About 30% of every name list is held out of the training split, and valid/test
draw half of their names from that held-out part, so a tagger has to
generalise from context and character shapes rather than memorise names.

It also writes plain text for the language-model demo (recipes/lm-demo.yaml): sentences
of the same templates, drawn with their own random generator (so the NER files above do
not change), detokenised, one per line:

    recipes/demo/lm-train.txt  2,400 lines    recipes/demo/lm-valid.txt / lm-test.txt  240 lines each

The script is deterministic (fixed seed, standard library only):

    python scripts/make_demo_corpus.py [--out-dir recipes/demo] [--seed 13]

After writing, it re-reads the files, checks the format and the IOB2 tags,
and prints sentence and entity counts per file.
"""

import argparse
import os
import random
import sys
from collections import Counter

SEED = 13
SIZES = (("train", 600), ("valid", 150), ("test", 150))
HELD_OUT_FRACTION = 0.3
HELD_OUT_RATE = 0.5  # share of valid/test slot fills taken from held-out names
MIN_LEN, MAX_LEN = 4, 30
TYPES = ("PER", "LOC", "ORG", "MISC")

# --------------------------------------------------------------------------
# Invented name lists.  Multi-token entries are written with spaces and are
# split into tokens; each list maps to one entity type.
# --------------------------------------------------------------------------

FIRST_NAMES = """
Anna Boris Clara Dmitri Elena Farid Greta Hugo Ingrid Jonas Kofi Lena Marco
Nadia Oskar Priya Quentin Rosa Stefan Tomas Ulla Viktor Wanda Yusuf Zara
Amara Bastian Celine Dario Esme Felix Hana Ivo Jasmin Karl Leila Matteo Nils
Olga Pavel Rania Sven Tariq Vera Wim Aiko Bruno Chiara Emil Fiona Goran
Helga Idris Joaquin Katya Lars Mirela Noor Orla Petra Rafael Selma Teodor
""".split()

LAST_NAMES = """
Halloran Vestergaard Okonkwo Brandt Marchetti Lindqvist Petrov Abernathy
Castellanos Dunmore Eriksen Fairweather Gallardo Hendricks Ibarra Janssen
Kowalczyk Larkspur Moravec Novak Oyelaran Pellegrini Quarles Rosenthal
Sokolova Thorne Uddin Valcourt Whitlock Yamazaki Zeller Ashgrove Bellamy
Corwin Delacroix Esterhazy Falkner Grimaldi Holloway Ivanenko Jorgensen
Kaminski Lindgren Mbeki Nakamura Ostrowski Pemberton Ravenscroft Salazar
Tanaka Umberti Varga Wexford Yilmaz Zimmerman Achterberg Blackwood Cordova
Drummond Elmsworth Fontaine Gustafsson Hargreave
""".split()

MIDDLE_PARTS = ["van", "de", "van der", "da", "von"]  # lower-case name particles

CITIES = """
Paris|Berlin|Tokyo|Nairobi|Madrid|Lisbon|Oslo|Cairo|Lima|Toronto|Sydney|
Vienna|Prague|Dublin|Lagos|Warsaw|Helsinki|Athens|Mumbai|Seoul|Quito|
Port Ellery|Valmora|Kestrel Bay|Norhaven|Brightwater|Sarovia|Eastmere|
Caldera Springs|New Avalon|Tarrow|Lindenfeld|Marisport|Old Harlow|
Vessen|Rocca Alta|San Teodoro|Fennick|Glassford|Havelock Point|Isterburg|
Juniper Falls|Karvell|Lowmarsh|Montclave|Orlen|Pellaway|Redhill Cross|
Solvang Ridge|Thessaly Harbour
"""

COUNTRIES = """
Kenya|Germany|Brazil|France|Japan|Canada|Egypt|Peru|Norway|Poland|Spain|
Portugal|Ireland|Greece|India|Nigeria|Finland|Austria|Chile|Australia|
Avalon|Nordavia|Estoria|Kaldonia|the Republic of Merrow|Valdris|Ostmark|
Serenia|Tamaru|Lusovia|Bergmark|the Aldine Islands|Corvenia|Drava|Qarnel|
Umbria Nova
"""

REGIONS = """
Bavaria|Patagonia|the Rift Valley|Lapland|Tuscany|Catalonia|
the Western Highlands|North Estoria|the Merrow Coast|Upper Valdris|
the Kaldon Basin|South Tamaru|the Greyfen Marshes|Lake Ostmark|
the Sarovian Plains|the Drava Delta
"""

COMPANIES = """
Northwind Shipping Company|Bank of Avalon|Helix Dynamics|Orbital Foods|
Granite Peak Holdings|Silverline Telecom|Bluewater Energy|Vantage Motors|
Crescent Pharmaceuticals|Ironbridge Steel|Pioneer Mining Corp|
Larkspur Textiles|Harbourside Insurance|Quanta Systems|Redwood Capital|
Sunfield Agriculture|Tessera Software|Union Bank of Nordavia|Westgate Retail|
Aurora Biotech|Cobalt Logistics|Evergreen Paper Mills|Falcon Ridge Brewing|
Goldcrest Media|Hale & Morrow Holdings|Kestrel Bay Bank|Lumen Optics|
Marlow Construction Group|Northstar Rail|Oakmont Chemicals|Polaris Semiconductors|
Riverstone Utilities|Stellar Cement|Tidewater Fisheries|Valmora Savings Bank|
Cartwright & Sons|Estoria Power Company|Brightwater Water Authority|Zenith Electronics
"""

ECON_AGENCIES = """
Ministry of Finance|National Statistics Office|Treasury of Avalon|
Merrow Bureau of Statistics|Estorian Trade Ministry|Office of the Budget
"""

GOVERNMENT = """
Ministry of Defence|Ministry of Health|Nordavian Energy Agency|
Office of the Attorney General|Valdris Customs Service|Interior Ministry|
Kaldonian Border Police|Department of Transport
"""

CENTRAL_BANKS = """
Central Bank of Estoria|Federal Reserve|Bank of Nordavia|Kaldonian Monetary Authority|
Reserve Bank of Tamaru|Bank of Serenia|Lusovian National Bank|Monetary Board of Drava
"""

LEGISLATURES = """
National Assembly|Senate|Council of Merrow|Nordavian Parliament|Estorian Senate|
House of Delegates|Supreme Council of Valdris|Federal Council|Grand Assembly of Corvenia
"""

PARTIES = """
Nordavian Labour Party|Green Alliance|People 's Democratic Front|Liberal Reform Party|
Avalon National Congress|Social Progress Party|Kaldonian Unity Movement|
Farmers and Workers League|New Centre Party|Estorian Christian Union
"""

BODIES = """
United Nations|European Union|Red Cross|World Health Council|International Trade Forum|
Supreme Court|Avalon Chamber of Commerce|Kaldonian Football Association|
Stock Exchange of Serenia|Organisation of Coastal States|International Olympic Committee|
Amnesty Watch|World Food Agency|Continental Development Bank
"""

UNIVERSITIES = """
University of Valmora|Port Ellery Institute of Technology|Norhaven University|
Royal Academy of Sciences|Eastmere College of Medicine|Isterburg Polytechnic|
Sarovia State University|Lindenfeld Institute for Economic Research|
University of Kestrel Bay|Montclave School of Law
"""

TEAMS = """
Valmora United|Port Ellery Rovers|Norhaven City|Brightwater Athletic|
Kestrel Bay Wanderers|Sarovia Dynamo|Eastmere Town|Tarrow Rangers|
Lindenfeld FC|Marisport Albion|Old Harlow Celtic|Fennick Olympic|
Glassford Orient|Isterburg Sporting|Karvell Real|Montclave Harriers|
Orlen Athletico|Pellaway Vale|Redhill Cross Rovers|Juniper Falls United
"""

NEWSPAPERS = """
Valmora Herald|Daily Courier|Norhaven Times|Estoria Gazette|Morning Ledger|
Avalon Post|Kestrel Bay Chronicle|Evening Standard Review|Sarovia Tribune|
Financial Observer
"""

NATIONALITIES = """
German|French|Kenyan|Brazilian|Japanese|Canadian|Egyptian|Peruvian|Norwegian|
Polish|Spanish|Irish|Greek|Indian|Nigerian|Finnish|Austrian|Chilean|
Australian|Avalonian|Nordavian|Estorian|Kaldonian|Merrowese|Valdrisian|
Ostmarker|Serenian|Tamaruan|Lusovian|Corvenian
"""

LANGUAGES = """
English|French|German|Spanish|Japanese|Estorian|Nordavian|Swahili|Portuguese|
Kaldonian
"""

EVENTS = """
World Cup|Olympics|Winter Olympics|Avalon Open|Tour de Valmora|
Nordavian Grand Prix|Estoria Marathon|Champions Cup|Golden Harp Festival|
Merrow Regatta|World Athletics Championships|Kestrel Bay Film Festival|
Serenia Masters|Autumn Trade Fair|Pan-Drava Games|Davis Trophy|
Continental Cup|Midsummer Jazz Festival
"""

AIRLINES = """
Meridian Airways|Air Nordavia|Estoria Air|Kestrel Airlines|Bluesky Express|
Avalon Air Lines|Sarovian Airlines|Coastal Jet
"""

PRODUCTS = """
Falcon X2|Orbit 7|Helix Pro|Aurora Mini|Quanta Book|Zenith 500|Stellar Air|
Lumen S3|Vantage Roadster|Tessera Office|Polaris Edge|Nimbus Tablet|
Cobalt Runner|Meridian Star|Goldcrest Reader
"""


def _split_list(text):
    return [item.strip() for item in text.replace("\n", "").split("|") if item.strip()]


POOLS_RAW = {
    "FIRST": FIRST_NAMES,
    "LAST": LAST_NAMES,
    "CITY": _split_list(CITIES),
    "COUNTRY": _split_list(COUNTRIES),
    "REGION": _split_list(REGIONS),
    "COMPANY": _split_list(COMPANIES),
    "ECON": _split_list(ECON_AGENCIES),
    "GOV": _split_list(GOVERNMENT),
    "CBANK": _split_list(CENTRAL_BANKS),
    "LEGIS": _split_list(LEGISLATURES),
    "PARTY": _split_list(PARTIES),
    "BODY": _split_list(BODIES),
    "UNIV": _split_list(UNIVERSITIES),
    "TEAM": _split_list(TEAMS),
    "PAPER": _split_list(NEWSPAPERS),
    "NAT": _split_list(NATIONALITIES),
    "LANG": _split_list(LANGUAGES),
    "EVENT": _split_list(EVENTS),
    "PRODUCT": _split_list(PRODUCTS),
    "AIRLINE": _split_list(AIRLINES),
}

# Entity type for each name pool (FIRST/LAST are combined into PER slots).
POOL_TYPE = {
    "CITY": "LOC", "COUNTRY": "LOC", "REGION": "LOC",
    "COMPANY": "ORG", "ECON": "ORG", "GOV": "ORG", "CBANK": "ORG", "LEGIS": "ORG",
    "PARTY": "ORG", "BODY": "ORG", "UNIV": "ORG", "TEAM": "ORG", "PAPER": "ORG",
    "AIRLINE": "ORG",
    "NAT": "MISC", "LANG": "MISC", "EVENT": "MISC", "PRODUCT": "MISC",
}

# Lower-case leading words ("the", "van der") are part of the entity in the
# name lists above, except "the" before a country/region, which CoNLL-2003
# usually leaves outside the entity.  We follow that: a leading "the" is O.

WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = ("January February March April May June July August September "
          "October November December").split()

# --------------------------------------------------------------------------
# Templates.  Tokens are separated by spaces; {SLOT} is replaced by one or more
# tokens.  Entity slots: PER (full name), PERL (surname only), PERF (first
# name), CITY, COUNTRY, REGION, LOC (any of the three), COMPANY, TEAM,
# PAPER, AIRLINE, ECON, GOV, CBANK, LEGIS, PARTY, BODY, UNIV, ORG (company or
# international body), NAT, LANG, EVENT, PRODUCT.
# Other slots (tag O): NUM, BIGNUM ("1,200"), DEC (price/time, "3.5"), PCT
# (small percentage), SCORE, WIN ("3 - 1"), DRAW ("2 - 2"), SET ("6 - 4"),
# YEAR, FYEAR (future year), DAY, MONTH, DATE, MONEY, AGE, RANK.
# A slot may carry a suffix to reuse a value: {PER#1} and {PERL#1} refer to
# the same person.
# --------------------------------------------------------------------------

TEMPLATES = [
    # --- news / business -------------------------------------------------
    "{PER} , the chief executive of {COMPANY} , arrived in {CITY} on {DAY} .",
    "{COMPANY} said on {DAY} it would cut {BIGNUM} jobs in {COUNTRY} .",
    "Shares in {COMPANY} rose {PCT} percent to {DEC} after the company reported strong sales .",
    "{COMPANY} posted a net profit of {MONEY} for the year to {MONTH} .",
    "The board of {COMPANY} named {PER} as its new chairman .",
    "{COMPANY} agreed to buy {COMPANY} for about {MONEY} , the two firms said .",
    "Analysts at {COMPANY} expect growth of {PCT} percent in {COUNTRY} this year .",
    "{COMPANY} will launch the {PRODUCT} in {CITY} next {MONTH} .",
    "The new {PRODUCT} sold {BIGNUM} units in its first week , {COMPANY} said .",
    "\" We are very pleased with the results , \" said {PER} , a spokesman for {COMPANY} .",
    "{PERL#1} told the {PAPER} that {COMPANY} had no plans to leave {COUNTRY} .",
    "{COMPANY} opened a new factory near {CITY} , creating {NUM} jobs .",
    "Workers at {COMPANY} 's plant in {CITY} went on strike on {DAY} .",
    "Inflation in {COUNTRY} slowed to {PCT} percent in {MONTH} , the {ECON} said .",
    "The {CBANK} left interest rates unchanged at {PCT} percent on {DAY} .",
    "{NAT} exports fell {PCT} percent in {MONTH} from a year earlier .",
    "The {NAT} government said it would sell its stake in {COMPANY} .",
    # --- politics ----------------------------------------------------------
    "President {PER} of {COUNTRY} will visit {CITY} next week .",
    "{COUNTRY} 's foreign minister {PER} met {NAT} officials in {CITY} on {DAY} .",
    "The {LEGIS} voted {NUM} to {NUM} to approve the budget .",
    "{PER} , leader of the {PARTY} , called for early elections .",
    "Talks between {COUNTRY} and {COUNTRY} ended without agreement in {CITY} .",
    "Prime Minister {PER} told parliament that {COUNTRY} would not raise taxes .",
    "{NAT} {PER} was elected to head the {BODY} on {DATE} .",
    "Thousands of people marched through {CITY} on {DAY} to protest against the new law .",
    "The {BODY} said {BIGNUM} people had been displaced by floods in {REGION} .",
    "Opposition leader {PER} accused the government of ignoring {REGION} .",
    "{PERL#1} , who is {AGE} , has served in the {LEGIS} since {YEAR} .",
    "Police in {CITY} arrested {NUM} people after clashes on {DAY} night .",
    "{PER} said in an interview with the {PAPER} that he would not resign .",
    "Officials from the {BODY} arrived in {COUNTRY} to monitor the vote .",
    "The {NAT} embassy in {CITY} was closed on {DAY} for security reasons .",
    "The {GOV} said it was investigating the incident in {CITY} .",
    "A spokeswoman for the {GOV} declined to comment .",
    # --- sport -------------------------------------------------------------
    "{TEAM} {SCORE} {TEAM} {SCORE}",
    "{TEAM} beat {TEAM} {WIN} on {DAY} .",
    "{PER} scored twice as {TEAM} won {WIN} at home .",
    "{NAT} striker {PER} has signed a {NUM} - year contract with {TEAM} .",
    "{PER} ( {COUNTRY} ) won the {EVENT} in {CITY} on {DAY} .",
    "{COUNTRY} will host the {EVENT} in {FYEAR} .",
    "{PER} of {COUNTRY} finished {RANK} in the {EVENT} , {DEC} seconds behind the winner .",
    "{NAT} {PER} won the {EVENT} on {DAY} .",
    "{TEAM} coach {PER} was sacked after {NUM} straight defeats .",
    "{PERF#1} {PERL#1} missed the match through injury , and {PERL#1} may also miss the {EVENT} .",
    "{COUNTRY} qualified for the {EVENT} with a {WIN} win over {COUNTRY} .",
    "{RANK} . {PER} ( {COUNTRY} ) {DEC}",
    "The {EVENT} will be held in {CITY} from {DATE} .",
    "{PER} beat {PER} {SET} {SET} in the second round .",
    "A crowd of {BIGNUM} watched {TEAM} draw {DRAW} with {TEAM} .",
    "{PER} became the first {NAT} woman to win the {EVENT} .",
    # --- travel / general --------------------------------------------------
    "Flights from {CITY} to {CITY} were cancelled because of heavy snow .",
    "{CITY} is the largest city in {COUNTRY} , with about {BIGNUM} people .",
    "Tourists from {COUNTRY} flocked to {REGION} this summer .",
    "The {NAT} artist {PER} opened an exhibition in {CITY} on {DATE} .",
    "{PER} 's new novel was translated into {LANG} and {LANG} .",
    "The {EVENT} attracted visitors from {COUNTRY} , {COUNTRY} and {COUNTRY} .",
    "A {NUM} - year - old man was injured when a bus crashed near {CITY} .",
    "Most people in {REGION} speak {LANG} .",
    "{AIRLINE} added daily flights between {CITY} and {CITY} .",
    "{PER} , a professor at the {UNIV} , said the results were surprising .",
    "Researchers at the {UNIV} in {CITY} published the study on {DAY} .",
    "Heavy rain caused flooding across {REGION} and parts of {COUNTRY} .",
    "Temperatures in {CITY} reached {NUM} degrees on {DAY} .",
    "The {PAPER} reported that {PER} had left {CITY} for {COUNTRY} .",
    "{CITY} , {COUNTRY}",
    "{PER} and {PER} were married in {CITY} last {MONTH} .",
    "In {YEAR} , {PER} moved to {CITY} to work for {COMPANY} .",
    "{ORG} staff in {CITY} will work from home until {MONTH} .",
    # --- no entities -------------------------------------------------------
    "The meeting was postponed until next week .",
    "Prices rose {PCT} percent in the third quarter .",
    "No one was hurt in the fire , police said .",
    "The company did not give any reason for the decision .",
    "Trading was thin ahead of the holiday weekend .",
    "The match was abandoned after {NUM} minutes because of rain .",
    "\" It was a very difficult game , \" the coach said .",
    "Unemployment fell to {PCT} percent , the lowest level since {YEAR} .",
    "About {BIGNUM} people attended the concert on {DAY} .",
    "the shares closed at {DEC} , up {PCT} on the day .",
    "Results of the second round on {DAY} :",
    "The talks will resume on {DATE} .",
]



class NamePools:
    """Name lists split into a train part and a held-out part."""

    def __init__(self, rng):
        self.train = {}
        self.held = {}
        for key, items in POOLS_RAW.items():
            items = sorted(set(items))
            rng.shuffle(items)
            n_held = max(1, int(round(len(items) * HELD_OUT_FRACTION)))
            self.held[key] = items[:n_held]
            self.train[key] = items[n_held:]

    def pick(self, rng, key, split):
        if split != "train" and rng.random() < HELD_OUT_RATE:
            return rng.choice(self.held[key])
        return rng.choice(self.train[key])


def entity_tokens(text, etype):
    """Split a name into tokens and tag them in IOB2.

    A leading lower-case "the" (e.g. "the Rift Valley") stays outside the
    entity, as in CoNLL-2003; other lower-case particles inside a name
    ("van der", "de", "of") are part of it.
    """
    toks = text.split()
    out = []
    if toks[0] == "the" and len(toks) > 1:
        out.append(("the", "O"))
        toks = toks[1:]
    for i, tok in enumerate(toks):
        out.append((tok, ("B-" if i == 0 else "I-") + etype))
    return out


def fmt_bignum(n):
    return "{:,}".format(n)


class SentenceMaker:
    def __init__(self, rng, pools, split):
        self.rng = rng
        self.pools = pools
        self.split = split

    def person(self):
        rng = self.rng
        first = self.pools.pick(rng, "FIRST", self.split)
        last = self.pools.pick(rng, "LAST", self.split)
        r = rng.random()
        if r < 0.12:
            name = "{} {} {}".format(first, rng.choice(MIDDLE_PARTS), last)
        elif r < 0.20:
            last2 = self.pools.pick(rng, "LAST", self.split)
            if last2 == last:
                name = "{} {}".format(first, last)
            else:
                name = "{} {}-{}".format(first, last, last2)
        else:
            name = "{} {}".format(first, last)
        return first, last, name

    def fill(self, slot, memo):
        rng = self.rng
        key, _, ref = slot.partition("#")
        if key in ("PER", "PERL", "PERF"):
            if ref:
                if ref not in memo:
                    memo[ref] = self.person()
                first, last, name = memo[ref]
            else:
                first, last, name = self.person()
            text = {"PER": name, "PERL": last, "PERF": first}[key]
            return entity_tokens(text, "PER")
        if key == "LOC":
            key = rng.choice(["CITY", "CITY", "COUNTRY", "REGION"])
        if key == "ORG":
            key = rng.choice(["COMPANY", "COMPANY", "BODY"])
        if key in POOL_TYPE:
            if ref and ref in memo:
                text = memo[ref]
            else:
                text = self.pools.pick(rng, key, self.split)
                if ref:
                    memo[ref] = text
            return entity_tokens(text, POOL_TYPE[key])
        # Non-entity slots, tagged O.
        if key == "NUM":
            val = str(rng.randint(2, 95))
        elif key == "BIGNUM":
            val = fmt_bignum(rng.choice([rng.randint(1000, 9999),
                                         rng.randint(10000, 250000),
                                         rng.randint(100, 999) * 1000]))
        elif key == "DEC":
            val = "{:.{}f}".format(rng.uniform(1.0, 250.0), rng.choice([1, 2, 2]))
        elif key == "PCT":
            val = "{:.1f}".format(rng.uniform(0.1, 9.9))
        elif key == "SCORE":
            val = str(rng.choice([0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 6]))
        elif key == "WIN":
            win = rng.choice([1, 1, 2, 2, 3, 4, 5])
            return [(str(win), "O"), ("-", "O"), (str(rng.randint(0, win - 1)), "O")]
        elif key == "DRAW":
            val = str(rng.choice([0, 1, 1, 2, 3]))
            return [(val, "O"), ("-", "O"), (val, "O")]
        elif key == "SET":
            win, lose = rng.choice([(6, 0), (6, 1), (6, 2), (6, 3), (6, 4), (7, 5), (7, 6)])
            return [(str(win), "O"), ("-", "O"), (str(lose), "O")]
        elif key == "FYEAR":
            val = str(rng.randint(2026, 2034))
        elif key == "YEAR":
            val = str(rng.randint(1950, 2024))
        elif key == "DAY":
            val = rng.choice(WEEKDAYS)
        elif key == "MONTH":
            val = rng.choice(MONTHS)
        elif key == "DATE":
            return [(rng.choice(MONTHS), "O"), (str(rng.randint(1, 28)), "O")]
        elif key == "MONEY":
            return [("{:.1f}".format(rng.uniform(1.0, 950.0)), "O"),
                    (rng.choice(["million", "billion"]), "O"),
                    (rng.choice(["dollars", "euros", "crowns"]), "O")]
        elif key == "AGE":
            val = str(rng.randint(28, 81))
        elif key == "RANK":
            val = str(rng.randint(1, 9))
        else:
            raise ValueError("unknown slot {!r}".format(slot))
        return [(val, "O")]

    def make(self, template):
        memo = {}
        out = []
        for piece in template.split():
            if piece.startswith("{") and piece.endswith("}"):
                out.extend(self.fill(piece[1:-1], memo))
            else:
                out.append((piece, "O"))
        return out


def generate(seed):
    rng = random.Random(seed)
    pools = NamePools(rng)
    seen = set()
    splits = {}
    for split, size in SIZES:
        maker = SentenceMaker(rng, pools, split)
        sents = []
        # Cycle through shuffled templates so that every pattern is used.
        order = []
        tries = 0
        while len(sents) < size:
            tries += 1
            if tries > size * 200:
                raise RuntimeError("could not generate enough sentences")
            if not order:
                order = list(TEMPLATES)
                rng.shuffle(order)
            tpl = order.pop()
            sent = maker.make(tpl)
            if not (MIN_LEN <= len(sent) <= MAX_LEN):
                continue
            key = tuple(tok for tok, _ in sent)
            if key in seen:
                continue
            seen.add(key)
            sents.append(sent)
        splits[split] = sents
    return splits


def write_conll(path, sents):
    with open(path, "w", encoding="utf-8") as f:
        for i, sent in enumerate(sents):
            if i:
                f.write("\n")
            for tok, tag in sent:
                f.write("{} {}\n".format(tok, tag))


LM_SIZES = (("lm-train", 2400), ("lm-valid", 240), ("lm-test", 240))
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "'s", "'", "%"}


def detokenize(tokens):
    """A tokenised sentence as plain text: no space before punctuation and "'s", none around "-" (2-0, 79-year-old)."""
    text = ""
    for tok in tokens:
        joined = not text or tok in NO_SPACE_BEFORE or tok == "-" or text.endswith(("(", "-"))
        text += tok if joined else " " + tok
    return text


def write_lm_text(out_dir, seed):
    """The language-model demo's plain text: template sentences (any length), one per line."""
    rng = random.Random(seed + 1000)  # its own stream: the NER files stay as they are
    pools = NamePools(rng)
    sizes = {}
    for split, size in LM_SIZES:
        maker = SentenceMaker(rng, pools, "train" if split == "lm-train" else "valid")
        lines = []
        while len(lines) < size:
            lines.append(detokenize([tok for tok, _ in maker.make(rng.choice(TEMPLATES))]))
        path = os.path.join(out_dir, split + ".txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        sizes[split] = (len(lines), os.path.getsize(path))
    return sizes


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------

def read_and_check(path):
    """Re-read a written file; return (sentences, entity counter, errors)."""
    errors = []
    sents = []
    cur = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        if line == "":
            if not cur:
                errors.append("{}:{}: empty sentence".format(path, lineno))
            else:
                sents.append(cur)
            cur = []
            continue
        cols = line.split(" ")
        if len(cols) != 2 or not cols[0] or not cols[1]:
            errors.append("{}:{}: expected 2 columns: {!r}".format(path, lineno, line))
            continue
        if cols[0] == "-DOCSTART-":
            errors.append("{}:{}: -DOCSTART- line".format(path, lineno))
        cur.append((cols[0], cols[1], lineno))
    if cur:
        sents.append(cur)

    counts = Counter()
    for sent in sents:
        if not (MIN_LEN <= len(sent) <= MAX_LEN):
            errors.append("{}:{}: sentence length {}".format(path, sent[0][2], len(sent)))
        prev = "O"
        for tok, tag, lineno in sent:
            if tag == "O":
                pass
            elif len(tag) > 2 and tag[:2] in ("B-", "I-") and tag[2:] in TYPES:
                if tag.startswith("B-"):
                    counts[tag[2:]] += 1
                elif prev == "O" or prev[2:] != tag[2:]:
                    errors.append("{}:{}: {} after {}".format(path, lineno, tag, prev))
            else:
                errors.append("{}:{}: bad tag {!r}".format(path, lineno, tag))
            prev = tag
    return sents, counts, errors


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default=os.path.join(here, "..", "recipes", "demo"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    out_dir = os.path.normpath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    splits = generate(args.seed)
    for split, _ in SIZES:
        write_conll(os.path.join(out_dir, split + ".txt"), splits[split])

    all_errors = []
    train_names = set()
    print("{:<10} {:>9} {:>7} {:>5} {:>5} {:>5} {:>5} {:>6}  {}".format(
        "file", "sentences", "tokens", *TYPES, "total", "unseen-in-train"))
    for split, _ in SIZES:
        path = os.path.join(out_dir, split + ".txt")
        sents, counts, errors = read_and_check(path)
        all_errors.extend(errors)
        # Share of entity mentions whose surface string never occurs as an
        # entity of the same type in train.
        mentions = []
        for sent in sents:
            span = None
            for tok, tag, _ in sent + [("", "O", 0)]:
                if tag.startswith("I-"):
                    span[1].append(tok)
                    continue
                if span:
                    mentions.append((span[0], " ".join(span[1])))
                span = (tag[2:], [tok]) if tag.startswith("B-") else None
        if split == "train":
            train_names = set(mentions)
            unseen = "-"
        else:
            n_unseen = sum(1 for m in mentions if m not in train_names)
            unseen = "{}/{} ({:.0%})".format(n_unseen, len(mentions),
                                            n_unseen / max(1, len(mentions)))
        n_tok = sum(len(s) for s in sents)
        print("{:<10} {:>9} {:>7} {:>5} {:>5} {:>5} {:>5} {:>6}  {}".format(
            split + ".txt", len(sents), n_tok, *(counts[t] for t in TYPES),
            sum(counts.values()), unseen))
    if all_errors:
        for err in all_errors[:50]:
            print("ERROR", err, file=sys.stderr)
        print("{} format errors".format(len(all_errors)), file=sys.stderr)
        return 1
    print("format OK: 2 columns, valid IOB2 ({}), lengths {}-{} tokens; written to {}".format(
        "/".join(TYPES), MIN_LEN, MAX_LEN, out_dir))
    for split, (lines, size) in write_lm_text(out_dir, args.seed).items():
        print("{:<14} {:>5} lines {:>8,} bytes (language-model demo text)".format(split + ".txt", lines, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
