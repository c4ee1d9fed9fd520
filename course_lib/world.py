"""A small synthetic world, and a document generator whose probabilities are known exactly.

The world
---------
`World.generate(seed)` invents a few dozen people with pronounceable names built from syllables
("Rozi", "Podipir"), a handful of cities ("Pominport"), and gives every person one value for each
relation in `RELATIONS`: the city they live in, their job, their pet, their favourite colour and
their best friend (another person). Those values are the ground truth: `World.facts()` lists them
as (subject, relation, object) triples. Every person also has a pronoun ("she" or "he").

The document process
--------------------
A document is one line of English about one person: a few sentences, each stating one fact or one
random event, separated by single spaces, ending with "." and no newline. `DocumentGenerator`
writes one by making these choices, each independent of the others:

1. the person: uniformly among the N people (or by `person_weights`), probability 1/N;
2. the number of sentences k: uniformly in [min_sentences, max_sentences], probability 1/M with
   M = max_sentences - min_sentences + 1;
3. which kinds of sentence, in which order: an ordered selection of k distinct kinds out of the
   R enabled ones (`KINDS`: the five relations and "visit"), probability (R-k)!/R!;
4. for every sentence, its template: uniformly among the kind's two templates (`TEMPLATES`),
   probability 1/2 each;
5. for every sentence after the first, how it refers to the person: by name with probability
   `name_prob`, by pronoun otherwise (the first sentence always names the person);
6. for a "visit" sentence, its content: a day uniformly in 1..n_days and a city uniformly among
   the world's C cities, probability 1/(n_days * C).

Everything else is determined: a relation sentence states the person's true value, the article
("a"/"an") follows the next word, the pronoun follows the person. The probability of a document is
the product of the probabilities of its choices. For the default world (N=24, C=8, R=6, k in 3..5,
name_prob=1/2, n_days=28), this three-sentence document has probability
1/24 (person) * 1/3 (k=3) * 1/(6*5*4) (kinds and order) * (1/2)**3 (templates) * (1/2)**2 (pronoun in
sentence 2, name in sentence 3):

>>> world = World.generate(seed=0)
>>> generator = DocumentGenerator(world)
>>> person = world.people[0]
>>> text = generator.render(Derivation(person.name, (
...     Sentence("lives_in", 0, True), Sentence("works_as", 1, False), Sentence("has_pet", 1, True))))
>>> text
"Rozi lives in Pominport. By trade, she is a teacher. Rozi's pet is a cat."
>>> round(generator.log_prob(text), 4), round(-math.log(24 * 3 * 120 * 2**3 * 2**2), 4)
(-12.5299, -12.5299)

A "visit" sentence adds the factor 1/(28 * 8) for its day and city.

Why the exact probability matters: `log_prob` recovers every choice by parsing the text (each
template has its own fixed words, so one string has exactly one derivation), and `entropy` sums the
entropies of the independent choices in closed form. The entropy is the lowest expected loss, in
nats per document, that any language model can reach on documents drawn from this process; a
model's validation loss divided by it says how close to optimal the model is.

Uses in the course, each a knob of this one module:

- Fact recall: every document states facts about one person, so a model trained on the corpus can
  be asked `fact_prompt(fact)` ("Rozi lives in" -> " Pominport.") and scored on `World.facts()`.
- Retrieval: a document, or `fact_prompt`'s full sentence, is the passage that supplies a fact a
  model does not recall.
- Bias: `World.generate(bias=b)` pairs each city with a job and gives a person that job with
  probability b (instead of a uniform one), so (city, job) pairs co-occur more than chance;
  `DocumentGenerator(person_weights=...)` skews or rebalances how often each person is written
  about, with the exact probabilities still known.
- Attention and coreference: a pronoun sentence ("By trade, she is a teacher.") can only be
  completed by looking back to the name in the first sentence.

Left out, on purpose: grammar ambiguity (one derivation per string, by construction); any structure
beyond one document (documents are independent draws, so context from earlier lines does not
help); facts that change over time or contradict each other; multi-word values; a pronoun other
than "she" and "he".
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np

from course_lib.validation import boolean, int_in_range, probability

__all__ = [
    "RELATIONS", "VISIT", "KINDS", "TEMPLATES", "PRONOUNS", "JOBS", "PETS", "COLOURS", "Fact", "Person", "World",
    "Sentence", "Derivation", "DocumentGenerator", "END",
]

RELATIONS = ("lives_in", "works_as", "has_pet", "likes_colour", "best_friend")
VISIT = "visit"
KINDS = RELATIONS + (VISIT,)
END = "end"  # `DocumentGenerator.next_kind_probs`'s name for "the document stops here"

# Slots: {S} subject at the start of a sentence, {s} subject inside it, {P} possessive at the start,
# {o} the object (the relation's value, or the visited city), {a} its article, {d} the day.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "lives_in": ("{S} lives in {o}.", "{P} home is in {o}."),
    "works_as": ("{S} works as {a} {o}.", "By trade, {s} is {a} {o}."),
    "has_pet": ("{S} has a pet {o}.", "{P} pet is {a} {o}."),
    "likes_colour": ("{S} likes the colour {o}.", "{P} favourite colour is {o}."),
    "best_friend": ("{P} best friend is {o}.", "{S} is best friends with {o}."),
    VISIT: ("On day {d}, {s} visited {o}.", "{S} visited {o} on day {d}."),
}

# Pronoun forms for the slots {S}, {s}, {P}.
PRONOUNS: dict[str, tuple[str, str, str]] = {"she": ("She", "she", "Her"), "he": ("He", "he", "His")}

JOBS = ("baker", "doctor", "engineer", "farmer", "nurse", "painter", "pilot", "teacher",
        "tailor", "potter", "singer", "sailor")
PETS = ("cat", "dog", "owl", "parrot", "rabbit", "turtle", "goat", "hamster", "horse", "iguana")
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "pink")

_ONSETS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_CODAS = ("", "", "", "n", "l", "r", "s")
_CITY_SUFFIXES = ("ford", "holm", "wick", "dale", "mere", "port", "stead", "ton")
_RESERVED = {"She", "He", "Her", "His", "On", "By"}  # capitalised words the templates use
_NAME_RE = re.compile(r"[A-Z][a-z]+")
_WORD_RE = re.compile(r"[a-z]+")
_ATTRIBUTE = {"lives_in": "city", "works_as": "job", "has_pet": "pet", "likes_colour": "colour",
              "best_friend": "friend"}

Rng = random.Random | np.random.Generator


class Fact(NamedTuple):
    """One ground-truth triple, e.g. ``Fact("Rozi", "lives_in", "Pominport")``."""

    subject: str
    relation: str
    object: str


@dataclass(frozen=True)
class Person:
    """A person of the world and their value for each relation."""

    name: str
    pronoun: str
    city: str
    job: str
    pet: str
    colour: str
    friend: str

    def value(self, relation: str) -> str:
        """The object of `relation` for this person, e.g. ``value("lives_in") -> "Pominport"``."""
        if relation not in _ATTRIBUTE:
            raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
        return getattr(self, _ATTRIBUTE[relation])


@dataclass(frozen=True)
class World:
    """People, the vocabularies their attributes come from, and how the world was generated."""

    people: tuple[Person, ...]
    cities: tuple[str, ...]
    jobs: tuple[str, ...]
    pets: tuple[str, ...]
    colours: tuple[str, ...]
    seed: int
    bias: float = 0.0

    def __post_init__(self) -> None:
        _check_world(self)

    @classmethod
    def generate(cls, seed: int = 0, n_people: int = 24, n_cities: int = 8, n_jobs: int = 8,
                 n_pets: int = 6, n_colours: int = 6, bias: float = 0.0) -> World:
        """Invent a world deterministically from `seed`.

        Names and cities are unique syllable words; each person's city, pet, colour, pronoun and
        friend (another person) are uniform draws; their job is uniform too, except that with
        probability `bias` it is the job paired with their city (city i <-> job i mod n_jobs).
        The draws do not depend on `bias`, so worlds that differ only in `bias` differ only in jobs.
        """
        seed = int_in_range(seed, "seed", 0)
        n_people = int_in_range(n_people, "n_people", 2, 500)
        n_cities = int_in_range(n_cities, "n_cities", 1, 100)
        n_jobs = int_in_range(n_jobs, "n_jobs", 1, len(JOBS))
        n_pets = int_in_range(n_pets, "n_pets", 1, len(PETS))
        n_colours = int_in_range(n_colours, "n_colours", 1, len(COLOURS))
        bias = probability(bias, "bias")
        rng = random.Random(seed)
        cities = _unique_words(n_cities, lambda: _invent_word(rng, 2) + rng.choice(_CITY_SUFFIXES))
        names = _unique_words(n_people, lambda: _invent_word(rng, rng.choice((2, 3))), set(cities))
        jobs, pets, colours = JOBS[:n_jobs], PETS[:n_pets], COLOURS[:n_colours]
        people = []
        for i, name in enumerate(names):
            city = rng.randrange(n_cities)
            paired, uniform_job = rng.random() < bias, rng.randrange(n_jobs)
            friend = rng.randrange(n_people - 1)
            people.append(Person(
                name=name,
                pronoun=rng.choice(tuple(PRONOUNS)),
                city=cities[city],
                job=jobs[city % n_jobs] if paired else jobs[uniform_job],
                pet=rng.choice(pets),
                colour=rng.choice(colours),
                friend=names[friend + (friend >= i)],  # uniform over the others
            ))
        return cls(tuple(people), tuple(cities), jobs, pets, colours, seed=seed, bias=bias)

    @property
    def names(self) -> tuple[str, ...]:
        """The people's names, in order."""
        return tuple(p.name for p in self.people)

    def person(self, name: str) -> Person:
        """The person called `name`."""
        for p in self.people:
            if p.name == name:
                return p
        raise ValueError(f"name must be a person of this world, got {name!r}")

    def facts(self) -> list[Fact]:
        """Every ground-truth triple: for each person, one fact per relation in `RELATIONS`."""
        return [Fact(p.name, r, p.value(r)) for p in self.people for r in RELATIONS]

    def with_fact(self, fact: Fact) -> World:
        """A copy of the world in which ``fact`` holds: its subject's value for its relation replaced.

        The "updated document" of a retrieval lesson: ``with_fact(Fact("Rozi", "lives_in", "Katasport"))``
        is the world after Rozi moved. The new value must be one the world uses for that relation (a
        city of the world, one of its jobs, ..., another person for ``best_friend``).
        """
        if not isinstance(fact, tuple) or len(fact) != 3 or fact[1] not in RELATIONS:
            raise ValueError(f"fact must be a (subject, relation, object) with relation in {RELATIONS}, got {fact!r}")
        subject, relation, obj = fact
        person = self.person(subject)
        values = {"lives_in": self.cities, "works_as": self.jobs, "has_pet": self.pets, "likes_colour": self.colours,
                  "best_friend": tuple(n for n in self.names if n != subject)}[relation]
        if obj not in values:
            raise ValueError(f"fact's object must be one of {values} for {relation} of {subject}, got {obj!r}")
        changed = replace(person, **{_ATTRIBUTE[relation]: obj})
        return replace(self, people=tuple(changed if p.name == subject else p for p in self.people))

    def to_json(self) -> str:
        """The world as indented JSON text (ending with a newline); `from_json` reads it back."""
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> World:
        """Read a world written by `to_json`; raises ValueError if it is malformed."""
        try:
            data = json.loads(text)
            people = tuple(Person(**p) for p in data.pop("people"))
            return cls(people=people, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"text is not a world written by World.to_json: {error}") from None


@dataclass(frozen=True)
class Sentence:
    """One sentence's choices: its kind, its template, how it names the person, a visit's content."""

    kind: str
    template: int
    by_name: bool
    day: int | None = None
    place: str | None = None


@dataclass(frozen=True)
class Derivation:
    """Every choice the process made for one document: the person and the sentences in order."""

    person: str
    sentences: tuple[Sentence, ...]


class DocumentGenerator:
    """The probabilistic process of the module docstring, with exact `log_prob` and `entropy`."""

    def __init__(self, world: World, kinds: Sequence[str] = KINDS, min_sentences: int = 3,
                 max_sentences: int = 5, name_prob: float = 0.5, n_days: int = 28,
                 person_weights: Sequence[float] | None = None) -> None:
        if not isinstance(world, World):
            raise TypeError(f"world must be a World, got {type(world).__name__}")
        kinds = tuple(kinds)
        if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(KINDS):
            raise ValueError(f"kinds must be distinct values from {KINDS}, got {kinds!r}")
        min_sentences = int_in_range(min_sentences, "min_sentences", 1, len(kinds))
        max_sentences = int_in_range(max_sentences, "max_sentences", min_sentences, len(kinds))
        name_prob = probability(name_prob, "name_prob")
        n_days = int_in_range(n_days, "n_days", 1)
        self.world, self.kinds, self.name_prob, self.n_days = world, kinds, name_prob, n_days
        self.min_sentences, self.max_sentences = min_sentences, max_sentences
        self.person_probs = _normalise_weights(person_weights, len(world.people))
        self._cumulative = np.cumsum(self.person_probs).tolist()
        self._index = {name: i for i, name in enumerate(world.names)}

    # --- sampling --------------------------------------------------------------------------------

    def sample(self, rng: Rng) -> str:
        """Draw one document (a line of text without the newline)."""
        return self.render(self.sample_derivation(rng)[0])

    def sample_derivation(self, rng: Rng) -> tuple[Derivation, float]:
        """Draw one derivation and the log-probability of its choices, summed while drawing."""
        _check_rng(rng)
        i = min(bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1]),
                len(self._cumulative) - 1)
        log_p = math.log(self.person_probs[i])
        n_counts = self.max_sentences - self.min_sentences + 1
        k = self.min_sentences + _randbelow(rng, n_counts)
        log_p -= math.log(n_counts)
        remaining, sentences = list(self.kinds), []
        for j in range(k):
            log_p -= math.log(len(remaining))
            kind = remaining.pop(_randbelow(rng, len(remaining)))
            template = _randbelow(rng, len(TEMPLATES[kind]))
            log_p -= math.log(len(TEMPLATES[kind]))
            by_name = j == 0 or rng.random() < self.name_prob
            if j > 0:
                log_p += math.log(self.name_prob if by_name else 1.0 - self.name_prob)
            day = place = None
            if kind == VISIT:
                day = 1 + _randbelow(rng, self.n_days)
                place = self.world.cities[_randbelow(rng, len(self.world.cities))]
                log_p -= math.log(self.n_days * len(self.world.cities))
            sentences.append(Sentence(kind, template, by_name, day, place))
        return Derivation(self.world.people[i].name, tuple(sentences)), log_p

    # --- text <-> derivation ---------------------------------------------------------------------

    def render(self, derivation: Derivation) -> str:
        """The text of a derivation: its sentences joined by single spaces."""
        person = self._check_derivation(derivation)
        return " ".join(_render_sentence(person, s) for s in derivation.sentences)

    def parse(self, text: str) -> Derivation:
        """Recover the derivation of `text`; raises ValueError if the process cannot write it."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.endswith("."):
            raise ValueError(f"text must end with '.', got {text[-20:]!r}")
        pieces = [piece + "." for piece in text[:-1].split(". ")]
        person, sentences = None, []
        for number, piece in enumerate(pieces, start=1):
            person, sentence = self._parse_sentence(piece, number, person)
            sentences.append(sentence)
        derivation = Derivation(person.name, tuple(sentences))
        if self.render(derivation) != text:
            raise ValueError(f"text is not spaced or punctuated as the generator writes: {text!r}")
        return derivation

    def _parse_sentence(self, piece: str, number: int, person: Person | None) -> tuple[Person, Sentence]:
        """Match one sentence against every template; the one whose re-rendering is exact wins."""
        for kind in self.kinds:
            for template, pattern in enumerate(_PATTERNS[kind]):
                match = pattern.fullmatch(piece)
                if match is None:
                    continue
                subject = match["subject"]
                if person is None:
                    if subject not in self._index:
                        raise ValueError(f"sentence 1 must begin with a person's name, got {piece!r}")
                    person = self.world.person(subject)
                obj = match["object"]
                if kind in RELATIONS and obj != person.value(kind):
                    raise ValueError(f"sentence {number} states {kind}={obj!r} for {person.name}, "
                                     f"but in this world it is {person.value(kind)!r}: {piece!r}")
                day, place = None, None
                if kind == VISIT:
                    day, place = int(match["day"]), obj
                    if place not in self.world.cities or not 1 <= day <= self.n_days:
                        raise ValueError(f"sentence {number} visits a city or day the generator "
                                         f"cannot choose: {piece!r}")
                sentence = Sentence(kind, template, subject == person.name, day, place)
                if _render_sentence(person, sentence) == piece:
                    return person, sentence
        raise ValueError(f"sentence {number} matches no template of kinds {self.kinds}: {piece!r}")

    def _check_derivation(self, derivation: Derivation) -> Person:
        """Validate a derivation's structure; returns its person."""
        if not isinstance(derivation, Derivation):
            raise TypeError(f"derivation must be a Derivation, got {type(derivation).__name__}")
        if derivation.person not in self._index:
            raise ValueError(f"derivation.person must be a person of the world, got {derivation.person!r}")
        kinds = [s.kind for s in derivation.sentences]
        if not self.min_sentences <= len(kinds) <= self.max_sentences:
            raise ValueError(f"a document has {self.min_sentences}..{self.max_sentences} sentences, "
                             f"got {len(kinds)}")
        if len(set(kinds)) != len(kinds) or not set(kinds) <= set(self.kinds):
            raise ValueError(f"sentence kinds must be distinct values from {self.kinds}, got {kinds}")
        if not derivation.sentences[0].by_name:
            raise ValueError("the first sentence must name the person (by_name=True)")
        for s in derivation.sentences:
            int_in_range(s.template, f"template of a {s.kind!r} sentence", 0, len(TEMPLATES[s.kind]) - 1)
            boolean(s.by_name, f"by_name of a {s.kind!r} sentence")
            if s.kind == VISIT:
                int_in_range(s.day, "day of a visit sentence", 1, self.n_days)
                if s.place not in self.world.cities:
                    raise ValueError(f"a visit sentence needs a city of the world, got {s}")
            elif s.day is not None or s.place is not None:
                raise ValueError(f"only a visit sentence has a day and a city, got {s}")
        return self.world.person(derivation.person)

    # --- probabilities ---------------------------------------------------------------------------

    def derivation_log_prob(self, derivation: Derivation) -> float:
        """Natural-log probability of a derivation: the sum of the logs of its choices' probabilities.

        Returns -inf for a derivation that uses a choice of probability 0 (a person of weight 0, a
        pronoun when name_prob=1, a name when name_prob=0).
        """
        self._check_derivation(derivation)
        k, R = len(derivation.sentences), len(self.kinds)
        log_p = _log(self.person_probs[self._index[derivation.person]])
        log_p -= math.log(self.max_sentences - self.min_sentences + 1)
        log_p -= math.lgamma(R + 1) - math.lgamma(R - k + 1)  # ordered choice of k kinds out of R
        for j, s in enumerate(derivation.sentences):
            log_p -= math.log(len(TEMPLATES[s.kind]))
            if j > 0:
                log_p += _log(self.name_prob if s.by_name else 1.0 - self.name_prob)
            if s.kind == VISIT:
                log_p -= math.log(self.n_days) + math.log(len(self.world.cities))
        return log_p

    def log_prob(self, text: str) -> float:
        """Exact natural-log probability of a document, found by parsing its derivation.

        Raises ValueError for a text the generator cannot produce (or produces with probability 0).
        """
        log_p = self.derivation_log_prob(self.parse(text))
        if log_p == -math.inf:
            raise ValueError(f"text has probability 0 under this generator's weights: {text!r}")
        return log_p

    def can_write(self, text: str) -> bool:
        """Whether this generator can produce ``text`` (with probability > 0): `log_prob` succeeds.

        The test a model's sample must pass to be a document of the corpus's world. TypeError for a
        non-string, as in `log_prob`.
        """
        try:
            self.log_prob(text)
        except ValueError:
            return False
        return True

    def entropy(self) -> float:
        """Exact entropy of a document in nats: the sum of the entropies of the independent choices.

        H = H(person) + log M + mean_k log(R!/(R-k)!) + E[k]/R * sum_kinds log T_kind
            + (E[k] - 1) * h(name_prob) + E[k]/R * [visit enabled] * log(n_days * C),
        where each kind is in a document with probability E[k]/R, T_kind is its template count and
        h is the binary entropy.
        """
        counts = range(self.min_sentences, self.max_sentences + 1)
        R, mean_k = len(self.kinds), (self.min_sentences + self.max_sentences) / 2
        h = -sum(p * math.log(p) for p in self.person_probs if p > 0)
        h += math.log(len(counts))
        h += sum(math.lgamma(R + 1) - math.lgamma(R - k + 1) for k in counts) / len(counts)
        h += mean_k / R * sum(math.log(len(TEMPLATES[kind])) for kind in self.kinds)
        q = self.name_prob
        h += (mean_k - 1) * -sum(p * math.log(p) for p in (q, 1.0 - q) if p > 0)
        if VISIT in self.kinds:
            h += mean_k / R * math.log(self.n_days * len(self.world.cities))
        return h

    def next_kind_probs(self, previous: Sequence[str]) -> dict[str, float]:
        """The exact distribution of what follows sentences of the kinds ``previous``: a kind or `END`.

        Choices 2 and 3 of the process in one step: after j sentences the document stops with
        probability P(k = j) / P(k >= j) (0 below min_sentences, 1 at max_sentences); otherwise the
        next kind is uniform among the R - j kinds not used yet. Keys: `END` and every kind of the
        generator, in its order (used kinds have probability 0). Only the set of previous kinds
        matters, not their order.
        """
        previous = tuple(previous)
        if (not previous or len(set(previous)) != len(previous) or not set(previous) <= set(self.kinds)
                or len(previous) > self.max_sentences):
            raise ValueError(f"previous must be 1..{self.max_sentences} distinct kinds from {self.kinds}, "
                             f"got {previous!r}")
        j = len(previous)
        stop = 0.0 if j < self.min_sentences else 1.0 / (self.max_sentences - j + 1)  # uniform k
        unused = [kind for kind in self.kinds if kind not in previous]
        probs = {END: stop}
        for kind in self.kinds:
            probs[kind] = (1.0 - stop) / len(unused) if kind in unused and stop < 1 else 0.0
        return probs

    def next_word_probs(self, name: str, previous: Sequence[str]) -> dict[str, float]:
        """The exact distribution of the first word of the next sentence, given that the document goes on.

        ``previous`` are the kinds of the sentences written so far about the person ``name``. The
        next kind comes from `next_kind_probs`, renormalised without `END`; its template is uniform;
        the person is named with probability ``name_prob``, else the pronoun. The first word keeps
        the person's name as written ("Rozi", "Rozi's") and drops a trailing comma ("By", "On").
        Keys are in the order the choices are enumerated (kinds, templates, name before pronoun).
        Left out: the distribution of any later word, and the probability that the document stops.
        """
        person = self.world.person(name)
        kinds = self.next_kind_probs(previous)
        go_on = 1.0 - kinds[END]
        if go_on == 0:
            raise ValueError(f"previous must leave room for another sentence (at most {self.max_sentences - 1} "
                             f"kinds), got {tuple(previous)!r}")
        refer = {True: self.name_prob, False: 1.0 - self.name_prob}
        probs: dict[str, float] = {}
        for kind, p_kind in kinds.items():
            if kind == END or p_kind == 0:
                continue
            for template in range(len(TEMPLATES[kind])):
                for by_name, p_refer in refer.items():
                    sentence = Sentence(kind, template, by_name, day=1, place=self.world.cities[0])
                    word = _render_sentence(person, sentence).split(" ")[0].rstrip(",")
                    chance = p_kind / go_on / len(TEMPLATES[kind]) * p_refer
                    probs[word] = probs.get(word, 0.0) + chance
        return probs

    # --- prompts for later lessons ---------------------------------------------------------------

    def fact_prompt(self, fact: Fact) -> tuple[str, str]:
        """Split the first template's sentence of a fact into (prompt, answer).

        The answer starts with the space before the article or object, e.g.
        ``("Rozi works as", " a teacher.")``; prompt + answer is a sentence the generator writes
        (as the first sentence of a document), so the relation must be one of its ``kinds``.
        """
        if not isinstance(fact, tuple) or len(fact) != 3 or fact[1] not in RELATIONS:
            raise ValueError(f"fact must be a (subject, relation, object) with relation in {RELATIONS}, "
                             f"got {fact!r}")
        if fact[1] not in self.kinds:
            raise ValueError(f"fact must have a relation this generator writes, one of its kinds {self.kinds}, "
                             f"got {fact!r}")
        subject, relation, obj = fact
        person = self.world.person(subject)
        if person.value(relation) != obj:
            raise ValueError(f"fact must be true in this world, got {fact!r}")
        template = TEMPLATES[relation][0]
        cut = min(template.find(slot) for slot in ("{a}", "{o}") if slot in template) - 1
        prompt = template[:cut].format(S=subject, P=f"{subject}'s")
        sentence = _render_sentence(person, Sentence(relation, 0, True))
        return prompt, sentence[len(prompt):]


# --- helpers ---------------------------------------------------------------------------------------


def _compile(template: str) -> re.Pattern:
    """A loose regex for a template; exactness comes from re-rendering the match."""
    slots = {"S": r"(?P<subject>[A-Z][a-z]+)", "s": r"(?P<subject>[A-Za-z]+)",
             "P": r"(?P<subject>[A-Z][a-z]+)(?:'s)?", "o": r"(?P<object>[A-Za-z]+)",
             "a": r"(?:an?)", "d": r"(?P<day>[0-9]+)"}
    parts = re.split(r"\{(\w)\}", template)  # literal, slot, literal, slot, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else slots[p] for i, p in enumerate(parts)))


_PATTERNS = {kind: tuple(_compile(t) for t in templates) for kind, templates in TEMPLATES.items()}


def _render_sentence(person: Person, sentence: Sentence) -> str:
    """Fill one template for `person`."""
    obj = sentence.place if sentence.kind == VISIT else person.value(sentence.kind)
    start, inside, possessive = PRONOUNS[person.pronoun]
    if sentence.by_name:
        start = inside = person.name
        possessive = f"{person.name}'s"
    return TEMPLATES[sentence.kind][sentence.template].format(
        S=start, s=inside, P=possessive, o=obj, a="an" if obj[0] in "aeiou" else "a", d=sentence.day)


def _invent_word(rng: random.Random, n_syllables: int) -> str:
    """A capitalised word of consonant-vowel syllables and an optional final consonant."""
    body = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syllables))
    return (body + rng.choice(_CODAS)).capitalize()


def _unique_words(n: int, invent: Callable[[], str], taken: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """`n` distinct words from `invent()`, avoiding `taken` and the templates' capitalised words."""
    words: list[str] = []
    while len(words) < n:
        word = invent()
        if word not in words and word not in taken and word not in _RESERVED:
            words.append(word)
    return words


def _check_world(world: World) -> None:
    """Raise ValueError unless every value is well formed and consistent."""
    names = [p.name for p in world.people]
    if len(names) < 2:
        raise ValueError(f"a world needs at least 2 people, got {len(names)}")
    for field_name, words, pattern in (("people names", names, _NAME_RE), ("cities", world.cities, _NAME_RE),
                                       ("jobs", world.jobs, _WORD_RE), ("pets", world.pets, _WORD_RE),
                                       ("colours", world.colours, _WORD_RE)):
        bad = [w for w in words if not isinstance(w, str) or not pattern.fullmatch(w) or w in _RESERVED]
        if not words or bad or len(set(words)) != len(words):
            raise ValueError(f"{field_name} must be distinct single words matching {pattern.pattern} "
                             f"(not {sorted(_RESERVED)}), got {list(words)}")
    if set(names) & set(world.cities):
        raise ValueError(f"names and cities must differ, both have {sorted(set(names) & set(world.cities))}")
    for p in world.people:
        for value, allowed, what in ((p.pronoun, PRONOUNS, "pronoun"), (p.city, world.cities, "city"),
                                     (p.job, world.jobs, "job"), (p.pet, world.pets, "pet"),
                                     (p.colour, world.colours, "colour"), (p.friend, names, "friend")):
            if value not in allowed:
                raise ValueError(f"{p.name}'s {what} must be one of {list(allowed)}, got {value!r}")
        if p.friend == p.name:
            raise ValueError(f"{p.name}'s friend must be another person, got {p.friend!r}")
    object.__setattr__(world, "seed", int_in_range(world.seed, "seed", 0))  # stored as a plain int
    object.__setattr__(world, "bias", probability(world.bias, "bias"))  # and a plain float


def _check_rng(rng: object) -> None:
    if not isinstance(rng, (random.Random, np.random.Generator)):
        raise TypeError(f"rng must be a random.Random or numpy.random.Generator, got {type(rng).__name__}")


def _randbelow(rng: Rng, n: int) -> int:
    """A uniform integer in 0..n-1 from either kind of generator."""
    return rng.randrange(n) if isinstance(rng, random.Random) else int(rng.integers(n))


def _normalise_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Probabilities proportional to `weights` (uniform when None)."""
    if weights is None:
        return [1.0 / n] * n
    values = np.asarray(weights, dtype=float)
    if values.shape != (n,) or not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ValueError(f"person_weights must be {n} finite non-negative numbers with a positive sum, "
                         f"got {weights!r}")
    return (values / values.sum()).tolist()


def _log(p: float) -> float:
    """log(p), with log(0) = -inf."""
    return math.log(p) if p > 0 else -math.inf
