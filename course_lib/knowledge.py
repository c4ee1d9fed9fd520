"""Knowledge graphs: a triple store of the course world, multi-hop queries, TransE, claim checking.

A knowledge graph stores facts as (subject, relation, object) triples. The course world
(`course_lib.world`) is one already: `TripleStore.from_world` holds its 120 facts (24 people x 5
relations) and answers

- pattern queries, `TripleStore.query`: any of subject, relation, object fixed, the rest wildcards;
- multi-hop queries, `TripleStore.follow` and `TripleStore.paths`: walk a path of relations, e.g.
  ``("best_friend", "lives_in")`` is "the city of the best friend"; a relation written ``"^lives_in"``
  is walked backwards ("who lives in");
- claim checking, `TripleStore.check_claim`: a sentence in the corpus's phrasing ("Rozi lives in
  Pominport.", any template of `course_lib.world.TEMPLATES`) is parsed back to a triple
  (`parse_claim`) and looked up: *supported* if the graph holds it, *contradicted* if the graph gives
  the subject another value of a relation that has one value per subject, *unknown* otherwise
  (including a sentence that does not parse). A language model does none of this by itself: a
  system checks its output against a graph only if it is built to. `document_claims` cuts a
  generated document into sentences and replaces each pronoun by the name the first sentence gives
  (the corpus's only kind of coreference), so that `check_claim` can read them.

TransE (Bordes et al. 2013) embeds entities and relations in one space so that a true triple is a
translation, ``e_h + r ≈ e_t``; its distance ``||e_h + r - e_t||`` (L1 or L2) is small for true
triples. `train_transe` follows the paper's algorithm: embeddings drawn uniformly in
[-6/sqrt(k), 6/sqrt(k)], relations L2-normalised once, entities L2-normalised before every
minibatch (otherwise the loss could be lowered by inflating their norms), and SGD on the margin ranking loss
``max(0, margin + d(h + r, t) - d(h' + r, t'))``, where (h', r, t') is the triple with its head or its
tail (each with probability 1/2, never both) replaced by another entity drawn uniformly.
`link_prediction` ranks every entity as the missing head and as the missing tail of each test
triple: mean rank, mean reciprocal rank and hits@k. In the *filtered* setting (``known`` given, as
in the paper's "filt." columns) a candidate that forms another known true triple is not counted
against the answer; in the *raw* setting it is. Ties count half (the expected rank when ties are
broken at random), so a model that cannot tell entities apart never looks perfect.
`random_guess_hits` gives the expected hits@k of baselines that need no training: random ranking,
or a guess within the right type of entity.

The world's facts are independent random draws, so a held-out fact is predictable only up to its
type (a city, a job, a person): TransE learns the types, which is what its hits@10 on the world
measures, and memorises the facts it is trained on.

Left out: other embedding models (TransH, RotatE, DistMult, ...), the "bern" corruption of later
papers, typed negative sampling, entity descriptions, graph construction from free text, rules and
reasoning beyond paths, and coreference beyond a document's one person (a pronoun always means the
person its first sentence names).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from course_lib.validation import (
    callable_arg,
    int_in_range,
    nonnegative_int,
    one_of,
    positive_int,
    positive_number,
    string,
    type_name,
)
from course_lib.world import PRONOUNS, RELATIONS, TEMPLATES, Fact, World

__all__ = [
    "SUPPORTED",
    "CONTRADICTED",
    "UNKNOWN",
    "TripleStore",
    "ClaimCheck",
    "parse_claim",
    "document_claims",
    "TransE",
    "train_transe",
    "LinkPrediction",
    "link_prediction",
    "random_guess_hits",
]

SUPPORTED, CONTRADICTED, UNKNOWN = "supported", "contradicted", "unknown"
INVERSE = "^"  # a path step "^lives_in" walks lives_in from object to subject


@dataclass(frozen=True)
class ClaimCheck:
    """A claim's verdict, the triple it was parsed to (None if it did not parse), the graph's evidence."""

    verdict: str  # SUPPORTED, CONTRADICTED or UNKNOWN
    claim: Fact | None
    evidence: tuple[Fact, ...]  # the fact that supports it, or the facts that contradict it


class TripleStore:
    """Facts as (subject, relation, object) triples, indexed for pattern and path queries.

    Duplicates are stored once; facts keep their first order. Entities are every subject and
    object, in order of first appearance; relations likewise.
    """

    def __init__(self, facts: Iterable[Fact | tuple[str, str, str]]) -> None:
        if isinstance(facts, (str, bytes)) or not isinstance(facts, Iterable):
            raise TypeError(f"facts must be an iterable of (subject, relation, object) triples, got {type_name(facts)}")
        unique: dict[Fact, None] = {}
        for i, fact in enumerate(facts):
            if not isinstance(fact, tuple) or len(fact) != 3:
                raise TypeError(f"facts[{i}] must be a (subject, relation, object) triple, got {fact!r}")
            unique[Fact(*(string(part, f"facts[{i}][{j}]", nonempty=True) for j, part in enumerate(fact)))] = None
        if not unique:
            raise ValueError("facts must hold at least one triple, got none")
        self.facts: tuple[Fact, ...] = tuple(unique)
        self._fact_set = frozenset(self.facts)
        self.entities: tuple[str, ...] = tuple(dict.fromkeys(e for f in self.facts for e in (f.subject, f.object)))
        self.relations: tuple[str, ...] = tuple(dict.fromkeys(f.relation for f in self.facts))
        self._forward: dict[tuple[str, str], list[str]] = {}  # (subject, relation) -> objects
        self._backward: dict[tuple[str, str], list[str]] = {}  # (object, relation) -> subjects
        for s, r, o in self.facts:
            self._forward.setdefault((s, r), []).append(o)
            self._backward.setdefault((o, r), []).append(s)
        multi = {r for (_, r), objects in self._forward.items() if len(objects) > 1}
        self.functional: frozenset[str] = frozenset(self.relations) - multi  # one object per subject

    @classmethod
    def from_world(cls, world: World) -> TripleStore:
        """The world's ground truth, `World.facts()`: one fact per person and relation."""
        if not isinstance(world, World):
            raise TypeError(f"world must be a World, got {type_name(world)}")
        return cls(world.facts())

    def __len__(self) -> int:
        return len(self.facts)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.facts)

    def __contains__(self, fact: object) -> bool:
        return isinstance(fact, tuple) and len(fact) == 3 and Fact(*fact) in self._fact_set

    def __repr__(self) -> str:
        return f"TripleStore({len(self.facts)} facts, {len(self.entities)} entities, {len(self.relations)} relations)"

    def _check_entity(self, entity: object, name: str) -> str:
        if string(entity, name) not in self.entities:
            raise ValueError(f"{name} must be an entity of the graph, got {entity!r}")
        return entity

    def query(self, subject: str | None = None, relation: str | None = None, object: str | None = None) -> list[Fact]:
        """The facts that match the pattern, in stored order; None is a wildcard.

        ``query("Rozi")`` is everything about Rozi, ``query(relation="lives_in", object="Pominport")``
        who lives in Pominport. A name that is not in the graph is an error (a typo, not an empty answer).
        """
        for value, name in ((subject, "subject"), (object, "object")):
            if value is not None:
                self._check_entity(value, name)
        if relation is not None:
            one_of(relation, "relation", self.relations)
        return [f for f in self.facts if (subject is None or f.subject == subject)
                and (relation is None or f.relation == relation) and (object is None or f.object == object)]

    def _check_path(self, path: Sequence[str]) -> list[tuple[str, bool]]:
        """The path as (relation, backwards) steps."""
        if isinstance(path, str) or not isinstance(path, Sequence):
            raise TypeError(f"path must be a sequence of relation names, e.g. ('best_friend', 'lives_in'), "
                            f"got {type_name(path)} {path!r}")
        if not path:
            raise ValueError("path must hold at least one relation, got an empty path")
        steps = []
        for i, step in enumerate(path):
            backwards = string(step, f"path[{i}]").startswith(INVERSE)
            relation = step[len(INVERSE):] if backwards else step
            if relation not in self.relations:
                raise ValueError(f"path[{i}] must be a relation of the graph {self.relations}, optionally "
                                 f"prefixed with {INVERSE!r}, got {step!r}")
            steps.append((relation, backwards))
        return steps

    def paths(self, start: str, path: Sequence[str]) -> list[tuple[str, ...]]:
        """Every walk from ``start`` along ``path``: tuples ``(start, e1, ..., en)``, one per way through.

        The walks are the evidence for a multi-hop answer: ``paths("Rozi", ("best_friend",
        "lives_in"))`` is ``[("Rozi", <friend>, <friend's city>)]``. A step ``"^r"`` goes from an object
        to every subject with relation r. Walks may revisit an entity.
        """
        walks = [(self._check_entity(start, "start"),)]
        for relation, backwards in self._check_path(path):
            index = self._backward if backwards else self._forward
            walks = [walk + (nxt,) for walk in walks for nxt in index.get((walk[-1], relation), ())]
        return walks

    def follow(self, start: str, path: Sequence[str]) -> list[str]:
        """The entities reached from ``start`` along ``path`` (the ends of `paths`), sorted, each once."""
        return sorted({walk[-1] for walk in self.paths(start, path)})

    def check_claim(self, text: str) -> ClaimCheck:
        """Parse one sentence in the corpus's phrasing and compare its triple with the graph.

        Supported: the triple is a fact. Contradicted: the relation has one value per subject in
        this graph (`functional`) and the graph gives the subject another one (the evidence). Unknown:
        the sentence does not parse (`parse_claim`), or the graph says nothing about the subject's
        relation. Absence is not falsity: only a functional relation can contradict.
        """
        claim = parse_claim(text)
        if claim is None:
            return ClaimCheck(UNKNOWN, None, ())
        if claim in self:
            return ClaimCheck(SUPPORTED, claim, (claim,))
        objects = self._forward.get((claim.subject, claim.relation), [])
        if objects and claim.relation in self.functional:
            return ClaimCheck(CONTRADICTED, claim, tuple(Fact(claim.subject, claim.relation, o) for o in objects))
        return ClaimCheck(UNKNOWN, claim, ())


# --- parsing claims ------------------------------------------------------------------------------

_PRONOUN_FORMS = frozenset(form for forms in PRONOUNS.values() for form in forms)
_SLOTS = {"S": r"(?P<subject>[A-Z][a-z]+)", "s": r"(?P<subject>[A-Z][a-z]+)", "P": r"(?P<subject>[A-Z][a-z]+)'s",
          "o": r"(?P<object>[A-Za-z]+)", "a": r"(?P<article>an?)"}


def _claim_pattern(template: str) -> re.Pattern:
    """A template of a relation as a regex for a sentence that names its subject."""
    parts = re.split(r"\{(\w)\}", template)  # literal, slot, literal, slot, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else _SLOTS[p] for i, p in enumerate(parts)))


_CLAIM_PATTERNS = [(relation, _claim_pattern(t)) for relation in RELATIONS for t in TEMPLATES[relation]]


def parse_claim(text: str) -> Fact | None:
    """The triple a sentence states, if it is one sentence of a relation template that names its subject.

    ``parse_claim("By trade, Rozi is a teacher.")`` is ``Fact("Rozi", "works_as", "teacher")``;
    whether the fact is true is not checked here, only the phrasing: surrounding whitespace is
    ignored, the article must agree with the object ("an owl"), and a pronoun subject ("She lives
    in ..."), a visit, several sentences or any other wording give None.
    """
    sentence = string(text, "text").strip()
    for relation, pattern in _CLAIM_PATTERNS:
        match = pattern.fullmatch(sentence)
        if match is None or match["subject"] in _PRONOUN_FORMS:
            continue
        obj = match["object"]
        article = match.groupdict().get("article")
        if article is not None and article != ("an" if obj[0] in "aeiou" else "a"):
            continue
        return Fact(match["subject"], relation, obj)
    return None


_SENTENCE_END = re.compile(r"(?<=\.)\s+")
_FIRST_NAME = re.compile(r"\b[A-Z][a-z]+\b")
_NOT_NAMES = frozenset(_PRONOUN_FORMS | {"On", "By"})  # capitalised words of the templates
_SUBJECT_PRONOUN = re.compile(r"\b({})\b".format("|".join(f for forms in PRONOUNS.values() for f in forms[:2])))
_POSSESSIVE = re.compile(r"^({})\b".format("|".join(forms[2] for forms in PRONOUNS.values())))


def document_claims(document: str) -> list[str]:
    """The complete sentences of one document, each pronoun replaced by the person the first names.

    ``document_claims("Rozi lives in Pominport. Her pet is a cat. She visited")`` is ``["Rozi lives
    in Pominport.", "Rozi's pet is a cat."]``: "She"/"he" become the name, "Her"/"His" the name with
    "'s", and a last sentence without its full stop (a generation cut short) is dropped, so that a
    truncated object is never read as a claim. The corpus refers to one person per document, named
    in its first sentence (subject before object in every template); if that sentence has a pronoun
instead, pronouns stay (and `parse_claim` rejects them).
    """
    text = string(document, "document").strip()
    sentences = [s for s in _SENTENCE_END.split(text) if s.endswith(".")]
    if not sentences:
        return []
    first = sentences[0]
    refers_back = _SUBJECT_PRONOUN.search(first) or _POSSESSIVE.search(first)
    name = None if refers_back else next((w for w in _FIRST_NAME.findall(first) if w not in _NOT_NAMES), None)
    if name is None:
        return sentences
    return [_POSSESSIVE.sub(name + "'s", _SUBJECT_PRONOUN.sub(name, s)) for s in sentences]


# --- TransE --------------------------------------------------------------------------------------


class TransE(torch.nn.Module):
    """Entity and relation embeddings (float64) with the distance ``||e_h + r - e_t||_p`` of a triple.

    ``entities`` and ``relations`` name the rows; facts are scored by name (`distance`) or by ids
    (`forward`). Initialised as in Bordes et al. 2013: every coordinate uniform in
    [-6/sqrt(dim), 6/sqrt(dim)], then each relation vector and each entity vector L2-normalised.
    """

    def __init__(self, entities: Sequence[str], relations: Sequence[str], dim: int = 32, p: int = 2,
                 seed: int = 0) -> None:
        super().__init__()
        self.entities = _names(entities, "entities")
        self.relations = _names(relations, "relations")
        self.dim = positive_int(dim, "dim")
        self.p = int_in_range(p, "p", 1, 2)
        generator = torch.Generator().manual_seed(nonnegative_int(seed, "seed"))
        bound = 6 / math.sqrt(self.dim)
        entity = torch.empty(len(self.entities), self.dim, dtype=torch.float64).uniform_(-bound, bound,
                                                                                          generator=generator)
        relation = torch.empty(len(self.relations), self.dim, dtype=torch.float64).uniform_(-bound, bound,
                                                                                             generator=generator)
        self.entity = torch.nn.Parameter(entity / entity.norm(dim=1, keepdim=True))  # (E, k)
        self.relation = torch.nn.Parameter(relation / relation.norm(dim=1, keepdim=True))  # (R, k)
        self._entity_ids = {e: i for i, e in enumerate(self.entities)}
        self._relation_ids = {r: i for i, r in enumerate(self.relations)}

    def ids(self, facts: Iterable[Fact | tuple[str, str, str]]) -> torch.Tensor:
        """Facts by name as ids, shape (N, 3): head, relation, tail; an unknown name is an error."""
        rows = []
        for i, fact in enumerate(facts):
            if not isinstance(fact, tuple) or len(fact) != 3:
                raise TypeError(f"facts[{i}] must be a (subject, relation, object) triple, got {fact!r}")
            h, r, t = fact
            for name, table, what in ((h, self._entity_ids, "subject"), (r, self._relation_ids, "relation"),
                                      (t, self._entity_ids, "object")):
                if name not in table:
                    kind = "a relation" if what == "relation" else "an entity"
                    raise ValueError(f"facts[{i}]'s {what} must be {kind} of the model, got {name!r}")
            rows.append((self._entity_ids[h], self._relation_ids[r], self._entity_ids[t]))
        if not rows:
            raise ValueError("facts must hold at least one triple, got none")
        return torch.tensor(rows, dtype=torch.long, device=self.entity.device)  # (N, 3)

    def forward(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Distances ``||e_h + r - e_t||_p`` of the triples, shape (B,) for ids of shape (B,)."""
        return self._norm(self.entity[heads] + self.relation[relations] - self.entity[tails])  # (B,)

    def distance(self, fact: Fact | tuple[str, str, str]) -> float:
        """The distance of one fact given by name: small for a triple the model believes."""
        h, r, t = self.ids([fact])[0]
        with torch.no_grad():
            return float(self(h[None], r[None], t[None])[0])

    def tail_distances(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Distances of (h, r, e) for every entity e as the tail: shape (B, E)."""
        translated = self.entity[heads] + self.relation[relations]  # (B, k)
        return self._norm(translated[:, None, :] - self.entity[None])  # (B, E)

    def head_distances(self, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Distances of (e, r, t) for every entity e as the head: shape (B, E)."""
        target = self.entity[tails] - self.relation[relations]  # (B, k)  e + r - t = e - (t - r)
        return self._norm(self.entity[None] - target[:, None, :])  # (B, E)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """The L1 or L2 norm over the last dimension, (..., k) -> (...)."""
        return x.abs().sum(dim=-1) if self.p == 1 else x.pow(2).sum(dim=-1).sqrt()

    def normalize_entities_(self) -> None:
        """Put every entity vector back on the unit sphere (in place)."""
        with torch.no_grad():
            self.entity /= self.entity.norm(dim=1, keepdim=True)


def _names(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"{what} must be a sequence of names, got {type_name(names)}")
    names = tuple(string(n, f"{what}[{i}]", nonempty=True) for i, n in enumerate(names))
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{what} must be at least one distinct name, got {list(names)}")
    return names


def train_transe(model: TransE, facts: Iterable[Fact | tuple[str, str, str]], *, steps: int = 2000,
                 batch_size: int = 32, margin: float = 1.0, lr: float = 0.1, seed: int = 0) -> list[float]:
    """Train ``model`` in place on ``facts`` with Bordes et al.'s algorithm; returns the loss of every step.

    Each step: L2-normalise the entities; draw ``batch_size`` training triples (uniformly, with
    replacement); corrupt each by replacing its head or its tail (probability 1/2 each) with an
    entity drawn uniformly among the others; take one SGD step on the mean of
    ``max(0, margin + d(h + r, t) - d(h' + r, t'))``. The entities are normalised once more at the
    end, so the returned model has unit entity vectors. Seeded: the same arguments give the same model.
    """
    if not isinstance(model, TransE):
        raise TypeError(f"model must be a TransE, got {type_name(model)}")
    triples = model.ids(facts)  # (N, 3)
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    margin = positive_number(margin, "margin")
    lr = positive_number(lr, "lr")
    if len(model.entities) < 2:
        raise ValueError(f"model must have at least 2 entities to corrupt a triple, got {list(model.entities)}")
    generator = torch.Generator().manual_seed(nonnegative_int(seed, "seed"))
    n_entities, device = len(model.entities), model.entity.device
    losses = []
    for _ in range(steps):
        model.normalize_entities_()
        batch = triples[torch.randint(len(triples), (batch_size,), generator=generator).to(device)]  # (B, 3)
        column = torch.where(torch.rand(batch_size, generator=generator) < 0.5, 0, 2).to(device)  # (B,) head or tail
        original = batch.gather(1, column[:, None])[:, 0]  # (B,)
        other = torch.randint(n_entities - 1, (batch_size,), generator=generator).to(device)  # (B,)
        replacement = other + (other >= original)  # (B,) uniform over the entities except the original
        corrupted = batch.scatter(1, column[:, None], replacement[:, None])  # (B, 3)
        positive = model(batch[:, 0], batch[:, 1], batch[:, 2])  # (B,)
        negative = model(corrupted[:, 0], corrupted[:, 1], corrupted[:, 2])  # (B,)
        loss = torch.relu(margin + positive - negative).mean()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for parameter in (model.entity, model.relation):
                parameter -= lr * parameter.grad  # plain SGD, as in the paper
        losses.append(loss.item())
    model.normalize_entities_()
    return losses


def _ks(ks: Sequence[int]) -> tuple[int, ...]:
    if isinstance(ks, str) or not isinstance(ks, Sequence):
        raise TypeError(f"ks must be a sequence of positive ints, got {type_name(ks)}")
    if not ks:
        raise ValueError("ks must hold at least one k, got an empty sequence")
    return tuple(positive_int(k, f"ks[{i}]") for i, k in enumerate(ks))


def _rank(distances: torch.Tensor, true: int, known: set[int]) -> float:
    """1 + candidates closer than ``true`` + half those as close, leaving out the other ``known`` ones."""
    keep = torch.ones_like(distances, dtype=torch.bool)  # (E,)
    keep[sorted(known - {true})] = False
    d, d_true = distances[keep], distances[true]  # (E',), ()
    return 1 + float((d < d_true).sum()) + 0.5 * (float((d == d_true).sum()) - 1)


@dataclass(frozen=True, eq=False)
class LinkPrediction:
    """Link prediction metrics over the head and the tail of every test triple (2N ranks)."""

    mean_rank: float
    mean_reciprocal_rank: float
    hits: dict[int, float]  # k -> fraction of ranks <= k
    ranks: np.ndarray  # (N, 2): the rank of the true head and of the true tail of each triple


def link_prediction(model: TransE, facts: Iterable[Fact | tuple[str, str, str]],
                    known: Iterable[Fact | tuple[str, str, str]] | None = None,
                    ks: Sequence[int] = (1, 3, 10)) -> LinkPrediction:
    """Rank every entity as the missing head and the missing tail of each fact, by distance.

    The rank of the true entity is 1 + the number of candidates closer + half the number at the
    same distance. Filtered setting (``known`` given: every true triple, training and test): a
    candidate that forms a known triple other than the test one is left out of the count. Raw
    setting (``known=None``): every entity counts. hits@k is the fraction of ranks <= k.
    """
    if not isinstance(model, TransE):
        raise TypeError(f"model must be a TransE, got {type_name(model)}")
    triples = model.ids(facts)  # (N, 3)
    ks = _ks(ks)
    heads_known: dict[tuple[int, int], set[int]] = {}  # (relation, tail) -> heads of known triples
    tails_known: dict[tuple[int, int], set[int]] = {}  # (head, relation) -> tails of known triples
    for h, r, t in (model.ids(known).tolist() if known is not None else []):
        heads_known.setdefault((r, t), set()).add(h)
        tails_known.setdefault((h, r), set()).add(t)
    with torch.no_grad():
        head = model.head_distances(triples[:, 1], triples[:, 2])  # (N, E)
        tail = model.tail_distances(triples[:, 0], triples[:, 1])  # (N, E)
    ranks = np.array([[_rank(head[i], h, heads_known.get((r, t), set())),
                       _rank(tail[i], t, tails_known.get((h, r), set()))]
                      for i, (h, r, t) in enumerate(triples.tolist())])  # (N, 2)
    return LinkPrediction(mean_rank=float(ranks.mean()), mean_reciprocal_rank=float((1 / ranks).mean()),
                          hits={k: float((ranks <= k).mean()) for k in ks}, ranks=ranks)


def random_guess_hits(facts: Iterable[Fact | tuple[str, str, str]],
                      candidates: Callable[[Fact, str], Collection[str]],
                      known: Iterable[Fact | tuple[str, str, str]] | None = None,
                      ks: Sequence[int] = (1, 3, 10)) -> dict[int, float]:
    """Expected hits@k of a guesser that ranks ``candidates(fact, side)`` first, in random order.

    ``side`` is ``"head"`` or ``"tail"``, and the true entity must be a candidate; entities that are
    not candidates rank after all of them. Averaged like `link_prediction`, over the head and the tail
    of every fact. Filtered (``known`` given): the candidates that form another known triple are left
    out, so with m candidates left the true one is among the first k with probability min(k, m) / m.
    All entities as candidates is random ranking; the entities of the right type (the relation's
    subjects or objects) is a guess that knows the type and nothing else.
    """
    facts = [Fact(*f) for f in _triples(facts, "facts")]
    if not facts:
        raise ValueError("facts must hold at least one triple, got none")
    candidates = callable_arg(candidates, "candidates", "a callable (fact, side) -> collection of entities")
    ks = _ks(ks)
    heads_known: dict[tuple[str, str], set[str]] = {}  # (relation, tail) -> heads of known triples
    tails_known: dict[tuple[str, str], set[str]] = {}  # (head, relation) -> tails of known triples
    for h, r, t in _triples(known, "known") if known is not None else []:
        heads_known.setdefault((r, t), set()).add(h)
        tails_known.setdefault((h, r), set()).add(t)
    hits = {k: 0.0 for k in ks}
    for fact in facts:
        for side, true, others in (("head", fact.subject, heads_known.get((fact.relation, fact.object), set())),
                                   ("tail", fact.object, tails_known.get((fact.subject, fact.relation), set()))):
            pool = set(candidates(fact, side))
            if true not in pool:
                raise ValueError(f"candidates({fact}, {side!r}) must include the true {side} {true!r}")
            m = len(pool - (others - {true}))
            for k in ks:
                hits[k] += min(k, m) / m
    return {k: total / (2 * len(facts)) for k, total in hits.items()}


def _triples(facts: Iterable[Fact | tuple[str, str, str]], name: str) -> list[tuple[str, str, str]]:
    if isinstance(facts, (str, bytes)) or not isinstance(facts, Iterable):
        raise TypeError(f"{name} must be an iterable of (subject, relation, object) triples, got {type_name(facts)}")
    triples = list(facts)
    for i, fact in enumerate(triples):
        if not isinstance(fact, tuple) or len(fact) != 3:
            raise TypeError(f"{name}[{i}] must be a (subject, relation, object) triple, got {fact!r}")
    return triples
