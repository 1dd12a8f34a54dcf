"""Synthetic topic documents that give the stand-in LM something to steer toward.

GPT-2 XL learnt from WebText that anger words follow anger words and wedding talk follows
wedding talk. The stand-in learns it from these documents, mixed into the local prose corpus
(`shared.scripts.build_corpus --extra-docs`): every document has one topic (anger, calm,
weddings, or an ordinary topic such as football or cooking) and draws most of its sentences
from shared templates filled with that topic's words, so "the context so far is about X"
predicts X's vocabulary. The write-up's prompts occur in them in their natural roles:

- "Anger" opens many anger documents (the ActAdd prompts are a single word after BOS, so the
  model must have seen them at the start of a text); "Calm" opens documents of every other
  topic in everyday sentences ("Calm down.", "Calm weather today."): as in ordinary English,
  "anger" marks a topic and "calm" hardly does, so the anger vector is not the difference of
  two equally salient topic markers;
- "I talk about <topic> constantly." opens topic documents, and "I do not talk about <topic>
  constantly." opens documents about a different topic (so the wedding prompt pair differs
  in whether weddings follow);
- "I think you're ..." and "I went up to my friend and said ..." occur in every topic, so the
  unsteered completions of the write-up's prompts spread over all topics.

`generate_documents(cfg)` is deterministic for a seed (one `random.Random`), and the documents
it returns are the JSON lines `build_corpus` reads.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Mapping, Sequence

from shared.config import check

SOURCE = "steering_topics"


@dataclasses.dataclass(frozen=True)
class DocsConfig:
    """How many synthetic documents, of which topics, how long."""

    n_docs: int
    topic_weights: dict[str, float]  # topic -> relative frequency (names in `TOPICS`)
    negated_weight: float  # relative frequency of "I do not talk about X constantly." docs
    negated_topic_weights: dict[str, float]  # X of the negated openers
    min_sentences: int
    max_sentences: int
    opener_prob: float  # a topic document starts with one of the topic's openers
    canonical_opener_prob: float  # ... and then with its first one ("Anger.", "Calm.", "I talk
    #                               about weddings constantly.") with this probability
    off_topic_prob: float  # a sentence's slots come from the neutral lexicon instead
    calm_mention_prob: float  # a document opens with an everyday "Calm" sentence (any topic
    #                           but anger: "Calm" is a mild, ordinary word, "Anger" is not)
    seed: int

    def __post_init__(self) -> None:
        check(self.n_docs >= 1, "docs.n_docs must be positive")
        unknown = sorted(set(self.topic_weights) - set(TOPICS))
        check(not unknown, f"docs.topic_weights: unknown topic {unknown[:1]} (known: "
                           f"{', '.join(sorted(TOPICS))})")
        unknown = sorted(set(self.negated_topic_weights) - set(TOPICS))
        check(not unknown, f"docs.negated_topic_weights: unknown topic {unknown[:1]}")
        check(all(w >= 0 for w in self.topic_weights.values())
              and sum(self.topic_weights.values()) > 0, "docs.topic_weights must be >= 0, sum > 0")
        check(self.negated_weight >= 0, "docs.negated_weight must be non-negative")
        check(self.negated_weight == 0 or sum(self.negated_topic_weights.values()) > 0,
              "docs.negated_topic_weights must have a positive weight")
        check(1 <= self.min_sentences <= self.max_sentences,
              "docs needs 1 <= min_sentences <= max_sentences")
        check(0 <= self.opener_prob <= 1 and 0 <= self.canonical_opener_prob <= 1
              and 0 <= self.off_topic_prob < 1 and 0 <= self.calm_mention_prob <= 1,
              "docs.opener_prob, canonical_opener_prob and calm_mention_prob in [0, 1], "
              "off_topic_prob in [0, 1)")


@dataclasses.dataclass(frozen=True)
class Topic:
    """The words a topic fills the shared templates with."""

    plural: str  # "I talk about {plural} constantly."
    adj: tuple[str, ...]  # how people or things are
    feel: tuple[str, ...]  # abstract nouns
    noun: tuple[str, ...]  # things and events
    verb: tuple[str, ...]  # past-tense verb phrases
    said: tuple[str, ...]  # quoted utterances
    opinion: tuple[str, ...]  # "I think you're {opinion}."
    place: tuple[str, ...]
    openers: tuple[str, ...]  # first sentences ({name} allowed)
    own: tuple[str, ...]  # topic-specific sentences ({name}, {adj}, {noun}, ... allowed)


NAMES = ("Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Isla", "Jack",
         "Kate", "Leo", "Maria", "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tom", "Vera")
TIMES = ("morning", "afternoon", "evening", "night", "day", "week", "weekend", "summer")


def _topics(table: str) -> dict[str, Topic]:
    """The topics of `table`: a "[plural]" line, then a "field: option | option" line for each
    other `Topic` field; an indented line holds more options of the field above it."""
    rows: dict[str, dict[str, list[str]]] = {}
    options: list[str] = []
    for line in table.splitlines():
        if line.startswith("["):
            topic = rows[line.strip("[]")] = {}
        elif line.startswith(" "):
            options += line.strip().split(" | ")
        elif line:
            field, _, rest = line.partition(":")
            options = topic[field] = rest.strip().split(" | ") if rest.strip() else []
    return {plural: Topic(plural=plural, **{k: tuple(v) for k, v in row.items()})
            for plural, row in rows.items()}


# A table, not nested literals: every topic fills the same fields, so rows show what differs.
# Options never contain " | ".
TOPICS: dict[str, Topic] = _topics("""
[anger]
adj: angry | furious | livid | enraged | irate | mad | hostile | bitter | outraged | annoyed
    irritated | resentful | infuriated | seething
feel: anger | rage | fury | hatred | wrath | resentment | outrage | hostility | frustration
    bitterness | spite
noun: argument | fight | insult | quarrel | betrayal | lie | broken promise | rude letter
    shouting match | feud | grudge | scandal
verb: yelled | screamed | shouted | cursed | stormed out | slammed the door | raged | fumed
    snapped | lost their temper | hated everyone
said: I hate you! | You are an idiot! | Get out of my house! | I am so angry with you!
    How dare you! | You stupid fool! | I will never forgive you! | Shut up! | I am furious!
    Leave me alone, you liar! | This makes me so mad! | I despise you!
opinion: an idiot | a fool | a liar | stupid | rude | pathetic | a disgrace | a selfish jerk
    hateful | a coward | useless | a stupid fool
place: kitchen | office | street | car | hallway | meeting
openers: Anger. | Anger is a fire that burns inside. | Anger filled the room.
    Anger and rage were all {name} felt. | Anger, fury and hatred.
    Anger makes people say terrible things. | Anger again, and more rage.
own: {name} was so {adj} that they wanted to scream. | The {noun} left {name} shaking with {feel}.
    I hate it when people lie to me. | Why are you so stupid?
    {name} punched the wall in a fit of {feel}. | My blood was boiling with {feel}.
    I have never been this {adj} in my life. | Everyone in the {place} was {adj} and yelling.
    Anger, again. | Anger like that never fades.

[calm]
adj: calm | peaceful | relaxed | gentle | quiet | serene | patient | content | soothing | tranquil
    rested | at ease
feel: peace | calm | comfort | quiet | patience | kindness | gratitude | rest | stillness
    serenity
noun: garden | lake | breeze | sunrise | cup of tea | quiet evening | soft music | long walk
    warm bath | good book
verb: smiled | rested | breathed slowly | relaxed | listened | sat quietly | meditated
    took a deep breath | hummed softly
said: Take your time. | Everything is fine. | Let us rest a while. | I am so glad you are here.
    Breathe slowly. | There is no hurry. | It will be all right. | Thank you, that was kind.
opinion: kind | wonderful | very patient | a good friend | gentle | lovely | calm | thoughtful
    a kind soul
place: garden | park | library | porch | meadow | beach
openers: Peace and quiet. | Calm settled over the lake. | It was a quiet day.
    Calm and peace were all {name} felt. | Rest, at last. | Calm mornings are the best.
own: {name} felt {adj} and safe. | The {noun} filled {name} with {feel}.
    Nothing could disturb the {feel} of the {place}. | We sat together in {feel}.
    Slowly, everything became {adj}.

[weddings]
adj: married | engaged | romantic | beautiful | elegant | joyful | in love
feel: love | romance | joy | celebration | devotion | happiness
noun: wedding | bride | groom | ceremony | wedding cake | vows | wedding ring | honeymoon
    reception | bridesmaid | wedding dress | marriage | engagement | wedding party | bouquet
verb: got married | danced at the wedding | proposed | walked down the aisle | exchanged vows
    planned the wedding | married | went on honeymoon
said: Will you marry me? | The wedding was beautiful! | Who is the bride? | We are getting married!
    I love weddings! | Are you going to the wedding? | The groom looks nervous.
    I want a big wedding. | When is the wedding? | The bride looks lovely.
opinion: a great wedding planner | the best man | ready to marry | a lovely bride | engaged
    a nervous groom | married now
place: chapel | church | reception hall | garden | hotel | wedding venue
openers: I talk about weddings constantly. | Weddings are my favourite thing.
    The wedding was on Saturday. | {name} is getting married. | I love weddings.
    Weddings, brides and grooms.
own: The bride and the groom exchanged vows in the {place}.
    {name} and the groom planned the wedding together. | After the wedding they went on honeymoon.
    The wedding cake had five layers. | I talk about weddings all the time.
    Everyone cried when the bride walked down the aisle.
    {name} was the bridesmaid at the wedding.

[football]
adj: fast | strong | tired | proud | ready | lucky
feel: teamwork | effort | skill | speed | victory
noun: match | goal | ball | team | coach | stadium | penalty | league
verb: scored a goal | kicked the ball | won the match | trained hard | lost the game
    played football
said: What a goal! | Pass the ball! | We won the match! | The coach is right. | That was a penalty!
opinion: a good player | fast | the best striker | a great coach
place: stadium | pitch | park | club
openers: I talk about football constantly. | Football is a simple game.
    The match started at noon.
own: The team scored two goals in the second half. | {name} kicked the ball into the net.
    The coach told the players to run faster.

[cooking]
adj: hungry | delicious | hot | fresh | sweet | salty
feel: flavour | hunger | taste | spice
noun: soup | bread | pasta | recipe | oven | kitchen | cake | salad | sauce
verb: cooked dinner | baked bread | chopped onions | stirred the soup | tasted the sauce
    made lunch
said: Dinner is ready! | Pass the salt. | This soup is delicious. | Who wants more pasta?
    The bread is still warm.
opinion: a good cook | hungry | a great baker | a chef
place: kitchen | restaurant | bakery | market
openers: I talk about cooking constantly. | Cooking is an art. | Dinner was late again.
own: {name} added salt and pepper to the soup. | The bread came out of the oven golden and warm.
    We chopped the vegetables for the salad.

[gardening]
adj: green | muddy | sunny | growing | tall | wet
feel: growth | patience | sunshine | rain
noun: garden | flower | tree | seed | tomato | rose | shovel | soil | hedge
verb: planted seeds | watered the roses | dug the soil | trimmed the hedge | picked tomatoes
said: Look at these roses! | The tomatoes are ripe. | We need more rain. | Plant them in rows.
opinion: a good gardener | green-fingered | patient with plants
place: garden | greenhouse | field | yard
openers: I talk about gardening constantly. | Gardening takes patience.
    The roses bloomed early this year.
own: {name} planted tomatoes along the fence. | The soil was wet after the rain.
    We watered the flowers every morning.

[trains]
adj: late | crowded | early | slow | fast | noisy
feel: travel | speed | delay | distance
noun: train | station | ticket | platform | carriage | timetable | railway
verb: caught the train | missed the train | bought a ticket | changed trains
    waited on the platform
said: The train is late again. | Which platform is it? | One ticket, please.
    We missed the last train.
opinion: always late | a train spotter | good with timetables
place: station | platform | carriage | ticket office
openers: I talk about trains constantly. | Trains are never on time. | The station was crowded.
own: The train left the station ten minutes late. | {name} waited on the platform with a ticket.
    The railway runs along the coast.

[music]
adj: loud | soft | musical | tuneful | happy | talented
feel: rhythm | melody | harmony | music
noun: song | piano | guitar | concert | band | choir | violin | drum
verb: played the piano | sang a song | tuned the guitar | went to a concert | joined the choir
said: Play that song again! | The concert was amazing. | Can you sing? | Turn up the music!
opinion: a good singer | musical | talented | a great drummer
place: concert hall | studio | church | pub
openers: I talk about music constantly. | Music is everywhere. | The concert began at eight.
own: {name} played the piano for an hour. | The band played until midnight.
    We sang the old songs together.

[school]
adj: busy | clever | curious | tired | ready | careful
feel: homework | learning | knowledge | study
noun: lesson | teacher | book | exam | classroom | homework | pencil | test
verb: studied for the exam | read a book | did the homework | asked the teacher | passed the test
said: Open your books. | The exam is tomorrow. | Did you do the homework? | I passed the test!
opinion: clever | a good student | a great teacher | curious
place: classroom | library | school | hall
openers: I talk about school constantly. | School starts at nine. | The exam was hard.
own: The teacher wrote the lesson on the board. | {name} studied for the exam all week.
    We read the book in class.
""")

# Slots of sentences drawn "off topic": ordinary words with no topic.
NEUTRAL = _topics("""
[things]
adj: busy | tired | ready | late | early | nice | fine | sure | happy | sad
feel: time | news | work | weather | noise
noun: house | car | letter | phone | door | window | street | shop | dog | bus
verb: went home | made a call | opened the door | walked to the shop | sat down | read the news
    went to work | cleaned the house
said: How are you? | See you tomorrow. | What time is it? | Where are you going?
    I am fine, thanks. | Is that your car? | Let us go.
opinion: right | late | busy | tired | sure | ready | here | new in town
place: house | shop | street | office | town | bus
openers:
own:
""")["things"]

# Everyday sentences with "Calm" in them, opening documents of any topic but anger.
CALM_MENTIONS: tuple[str, ...] = (
    "Calm.", "Calm down, {name}.", "Calm weather today.", "Calm, {name} said.",
    "Calm day.", "Calm and cloudy.",
)

# Shared sentence templates; the slots come from the document's topic.
TEMPLATES: tuple[str, ...] = (
    "{name} was {adj} about the {noun}.",
    "I think you're {opinion}.",
    "I think you're {opinion}, {name}.",
    'I went up to my friend and said, "{said}"',
    "I went up to my friend and said that the {noun} was {adj}.",
    "{name} {verb} all {time}.",
    "There was so much {feel} in the {place}.",
    "We talked about the {noun} for hours.",
    "My friend told me that the {noun} was {adj}.",
    "It was a {adj} {time}, full of {feel}.",
    '{name} said, "{said}"',
    "Everyone felt {adj} after the {noun}.",
    "The {noun} made {name} feel {adj}.",
    "I {verb} when I saw the {noun}.",
    "{name} and {name2} {verb} together.",
    "Nobody expected so much {feel}.",
    "{name} looked at me and said, \"{said}\"",
    "Then {name} {verb}.",
    "It was all about the {noun} and the {feel}.",
    'My friend {name} said, "{said}"',
)


_ARTICLE = re.compile(r"\b([Aa]) ([aeiouAEIOU])")


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


def _fill(template: str, topic: Topic, rng: random.Random, off_topic_prob: float) -> str:
    """A template with its slots filled from `topic` (each slot from NEUTRAL with a chance)."""
    def word(kind: str) -> str:
        source = NEUTRAL if rng.random() < off_topic_prob else topic
        return _pick(rng, getattr(source, kind))

    name, name2 = rng.sample(NAMES, 2)
    text = template
    for kind in ("adj", "feel", "noun", "verb", "said", "opinion", "place"):
        while "{" + kind + "}" in text:
            text = text.replace("{" + kind + "}", word(kind), 1)
    text = text.replace("{name}", name).replace("{name2}", name2).replace(
        "{time}", _pick(rng, TIMES))
    return _ARTICLE.sub(r"\1n \2", text)  # "a elegant" -> "an elegant"


def _sentence(topic: Topic, rng: random.Random, off_topic_prob: float) -> str:
    # A third of the sentences are the topic's own, the rest shared templates.
    if topic.own and rng.random() < 0.3:
        return _fill(_pick(rng, topic.own), topic, rng, 0.0)
    return _fill(_pick(rng, TEMPLATES), topic, rng, off_topic_prob)


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _body(topic: Topic, n: int, rng: random.Random, cfg: DocsConfig) -> list[str]:
    return [_sentence(topic, rng, cfg.off_topic_prob) for _ in range(n)]


def generate_documents(cfg: DocsConfig) -> list[dict[str, str]]:
    """`cfg.n_docs` documents as {"source", "name", "text"} rows (deterministic for the seed).

    Paragraphs of 2-4 sentences; a topic document may start with one of its openers, a negated
    document starts "I do not talk about X constantly." and continues about another topic.
    """
    rng = random.Random(cfg.seed)
    total = sum(cfg.topic_weights.values()) + cfg.negated_weight
    docs = []
    for i in range(cfg.n_docs):
        n = rng.randint(cfg.min_sentences, cfg.max_sentences)
        if rng.random() < cfg.negated_weight / total:
            negated = _weighted(rng, cfg.negated_topic_weights)
            others = {t: w for t, w in cfg.topic_weights.items() if t != negated and w > 0}
            name = _weighted(rng, others)
            topic = TOPICS[name]
            first = f"I do not talk about {TOPICS[negated].plural} constantly."
            second = _pick(rng, (f"I talk about {topic.plural} instead.",
                                 f"Mostly I talk about {topic.plural}.",
                                 f"I would rather talk about {topic.plural}."))
            sentences = [first, second] + _body(topic, n, rng, cfg)
            kind = f"not_{negated}/{name}"
        else:
            name = _weighted(rng, cfg.topic_weights)
            topic = TOPICS[name]
            sentences = _body(topic, n, rng, cfg)
            if topic.openers and rng.random() < cfg.opener_prob:
                canonical = rng.random() < cfg.canonical_opener_prob
                opener = topic.openers[0] if canonical else _pick(rng, topic.openers)
                sentences.insert(0, _fill(opener, topic, rng, 0.0))
            kind = name
        if name != "anger" and rng.random() < cfg.calm_mention_prob:
            sentences.insert(0, _fill(_pick(rng, CALM_MENTIONS), NEUTRAL, rng, 0.0))
        paragraphs, j = [], 0
        while j < len(sentences):
            k = rng.randint(2, 4)
            paragraphs.append(" ".join(sentences[j:j + k]))
            j += k
        docs.append({"source": SOURCE, "name": f"{SOURCE}/{i:06d}-{kind}",
                     "text": "\n\n".join(paragraphs)})
    return docs


def write_documents(docs: Sequence[dict[str, str]], path: Path) -> None:
    """JSON lines, as `shared.scripts.build_corpus --extra-docs` reads them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in docs), encoding="utf-8")
    tmp.replace(path)
