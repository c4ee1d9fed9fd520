"""The course's fifty lessons: number, notebook, question (in the course's words), library modules.

One table feeds the README and `00_start_here.ipynb`, so the two never disagree; a test checks the
README against it. A lesson links to its notebook only once the notebook exists. `BUILDS_ON` names,
for every lesson, the earlier-taught lessons it relies on; every notebook states them in its first
cell and ends with a link to the next lesson (`link_lines`, written by `write_lesson_links`). Left
out: the lessons' content (it lives in the notebooks) and any ordering other than the questions' own.

Command line: ``python -m course_lib.tooling.syllabus`` rewrites the table in README.md (between its
``syllabus`` markers); ``--print`` prints it instead; ``--links`` rewrites every notebook's
"Builds on" and "Next" lines.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NOTEBOOKS", "COMPANION_NOTEBOOKS", "Lesson", "LESSONS", "BUILDS_ON", "Part", "PARTS", "BUILDS_ON_PREFIX", "NEXT_PREFIX", "link_lines",
           "write_lesson_links", "markdown_table", "README", "START", "END", "write_readme_table", "main"]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: The notebooks that are not lessons: the course's start page and the interview quiz.
COMPANION_NOTEBOOKS = ("00_start_here.ipynb", "interview_quiz.ipynb")


@dataclass(frozen=True)
class Lesson:
    number: int
    slug: str
    question: str
    modules: tuple[str, ...]

    @property
    def notebook(self) -> str:
        return f"{self.number:02d}_{self.slug}.ipynb"

    def exists(self, folder: Path = NOTEBOOKS) -> bool:
        return (folder / self.notebook).exists()


_L = Lesson
LESSONS: tuple[Lesson, ...] = (
    _L(1, "tokenization", "What is tokenization, and why does it matter for an LLM?", ("tokenization", "datasets")),
    _L(2, "lora_qlora", "What are LoRA and QLoRA?", ("lora", "quantization", "training", "losses", "measure", "world", "datasets", "evaluation", "zoo")),
    _L(3, "beam_search", "What is beam search, and how does it differ from greedy decoding?", ("decoding", "zoo", "datasets", "evaluation")),
    _L(4, "temperature", "What does the temperature do when an LLM generates text?", ("decoding", "zoo", "datasets", "losses", "measure")),
    _L(5, "masked_language_modeling", "What is masked language modelling, and what does it give pretraining?", ("objectives", "zoo", "checkpoints", "datasets", "evaluation", "losses")),
    _L(6, "sequence_to_sequence", "What are sequence-to-sequence models?", ("seq2seq", "softmax", "checkpoints", "datasets", "zoo")),
    _L(7, "autoregressive_vs_masked", "How do autoregressive and masked models differ in training?", ("attention", "objectives", "datasets", "evaluation", "losses", "transformer", "zoo")),
    _L(8, "embeddings", "What do embeddings do in an LLM, and how are they initialised?", ("embeddings", "models", "checkpoints", "datasets", "evaluation", "zoo")),
    _L(9, "next_sentence_prediction", "What is next sentence prediction, and is it useful?", ("objectives", "datasets", "tokenization", "world", "zoo")),
    _L(10, "top_k_top_p", "How do top-k and nucleus (top-p) sampling differ?", ("decoding", "datasets", "evaluation", "measure", "zoo")),
    _L(11, "prompt_engineering", "How does the prompt change what an LLM outputs?", ("prompting", "measure", "datasets", "zoo")),
    _L(12, "catastrophic_forgetting", "How can catastrophic forgetting be mitigated?", ("continual", "datasets", "decoding", "evaluation", "world", "zoo")),
    _L(13, "distillation", "What is model distillation, and how is it used for LLMs?", ("distillation", "datasets", "evaluation", "losses", "world", "zoo")),
    _L(14, "out_of_vocabulary", "How do LLMs handle out-of-vocabulary words?", ("tokenization", "datasets", "evaluation", "zoo")),
    _L(15, "transformer_vs_seq2seq", "What did the Transformer fix in recurrent sequence-to-sequence models?", ("costs", "attention", "measure", "models", "decoding", "transformer")),
    _L(16, "overfitting", "What is overfitting, and how is it prevented?", ("tuning", "datasets", "evaluation", "models", "zoo")),
    _L(17, "generative_vs_discriminative", "What are generative and discriminative models?", ("classifiers", "datasets", "evaluation", "zoo")),
    _L(18, "gpt4_vs_gpt3", "How do GPT-4 and GPT-3 differ, by what is actually disclosed?", ("registry", "tokenization", "checkpoints", "datasets")),
    _L(19, "positional_encodings", "What are positional encodings, and which kinds do LLMs use?", ("positional", "attention", "zoo")),
    _L(20, "multi_head_attention", "How does multi-head attention work?", ("attention", "costs", "datasets", "zoo")),
    _L(21, "softmax", "What does the softmax do inside attention?", ("softmax", "attention")),
    _L(22, "dot_product_cost", "How is the dot product used in self-attention, and what does it cost?", ("attention", "costs", "measure", "transformer")),
    _L(23, "cross_entropy", "What is cross-entropy, and why is it the language-modelling loss?", ("losses", "datasets", "models", "softmax", "world")),
    _L(24, "gradient_wrt_embeddings", "How is the gradient of the loss with respect to the embeddings computed?", ("losses", "autograd", "datasets", "embeddings", "models", "tokenization")),
    _L(25, "jacobian", "What role does the Jacobian play in backpropagation through a Transformer?", ("autograd", "attention", "measure", "softmax", "transformer")),
    _L(26, "eigen_pca", "How do eigenvalues and eigenvectors reduce dimensionality?", ("linalg", "datasets", "embeddings", "tokenization")),
    _L(27, "kl_divergence", "Where is the KL divergence used with LLMs?", ("losses", "zoo", "quantization", "datasets", "softmax")),
    _L(28, "relu_derivative", "What is the derivative of ReLU, and why does it matter?", ("autograd",)),
    _L(29, "chain_rule", "What is the chain rule, and how does gradient descent use it?", ("autograd", "measure")),
    _L(30, "attention_scores", "How are attention scores computed, and why are they scaled?", ("attention", "softmax")),
    _L(31, "gemini", "What does the Gemini report say about training efficiency and stability?", ("systems", "registry")),
    _L(32, "foundation_models", "What kinds of foundation models are there?", ("models", "classifiers", "datasets", "zoo")),
    _L(33, "peft_and_forgetting", "How does parameter-efficient fine-tuning limit forgetting?", ("lora", "checkpoints", "evaluation", "zoo")),
    _L(34, "rag", "What are the steps of a retrieval-augmented generation pipeline?", ("checkpoints", "datasets", "decoding", "measure", "retrieval", "world", "zoo")),
    _L(35, "mixture_of_experts", "How does a mixture of experts make LLMs scale?", ("moe", "datasets", "evaluation", "measure", "zoo")),
    _L(36, "chain_of_thought", "What is chain-of-thought prompting, and when does it help?",
       ("arithmetic", "checkpoints", "decoding", "prompting", "zoo")),
    _L(37, "generative_ai", "How does generative AI differ from discriminative AI?", ("datasets", "decoding", "evaluation", "zoo")),
    _L(38, "knowledge_graphs", "How can knowledge graphs be combined with LLMs?", ("datasets", "decoding", "knowledge", "measure", "world", "zoo")),
    _L(39, "zero_shot", "What is zero-shot learning, for LLMs and before them?", ("zero_shot", "measure", "prompting", "datasets", "zoo")),
    _L(40, "adaptive_softmax", "How does the adaptive softmax speed up large-vocabulary models?", ("adaptive_softmax", "measure")),
    _L(41, "vanishing_gradients", "What is the vanishing-gradient problem, and how does the Transformer avoid it?", ("transformer", "attention")),
    _L(42, "few_shot", "What is few-shot (in-context) learning?", ("icl_tasks", "prompting", "datasets", "zoo")),
    _L(43, "harmful_outputs", "How do you diagnose and fix offensive or incorrect outputs?", ("losses", "measure", "ngram", "world")),
    _L(44, "encoder_decoder", "What do the encoder and the decoder do?", ("transformer", "attention", "models", "softmax")),
    _L(45, "statistical_lms", "How do LLMs differ from statistical n-gram language models?", ("ngram", "datasets", "registry", "zoo")),
    _L(46, "context_window", "What is the context window, and what does it cost?", ("costs", "attention", "datasets", "decoding", "measure", "models", "tokenization")),
    _L(47, "hyperparameters", "What are hyperparameters, and how are they tuned?", ("tuning", "datasets", "evaluation", "models", "zoo")),
    _L(48, "attention_mechanisms", "How does attention work in a Transformer, on an example?", ("attention", "zoo", "datasets", "softmax", "world", "transformer")),
    _L(49, "large_language_models", "What is a large language model, and how does it scale?", ("scaling", "registry", "zoo")),
    _L(50, "llm_challenges", "What are the common challenges of using LLMs?", ("datasets", "decoding", "evaluation", "knowledge", "measure", "registry", "retrieval", "scaling", "zoo")),
)


#: For every lesson, the lessons whose content it relies on (what to read first if it is new to you).
BUILDS_ON: dict[int, tuple[int, ...]] = {
    1: (), 2: (26, 29), 3: (1, 23), 4: (21, 3), 5: (1, 23), 6: (23,), 7: (5, 30), 8: (1,), 9: (5,),
    10: (4,), 11: (4, 10), 12: (23, 29), 13: (27, 4), 14: (1,), 15: (6, 30), 16: (23, 29), 17: (23,),
    18: (1, 46), 19: (30,), 20: (21, 30), 21: (), 22: (30,), 23: (21,), 24: (8, 23), 25: (29,), 26: (),
    27: (23,), 28: (29,), 29: (), 30: (21,), 31: (18, 49), 32: (5, 7), 33: (2, 12), 34: (3, 46),
    35: (20, 22), 36: (3, 4), 37: (17, 23), 38: (8, 34), 39: (11, 32), 40: (21, 23), 41: (25, 28),
    42: (11, 39), 43: (45, 4), 44: (6, 7), 45: (23, 27), 46: (19, 20), 47: (16, 29),
    48: (20, 21, 22, 30, 44), 49: (23, 45), 50: (34, 49),
}
BUILDS_ON_PREFIX, NEXT_PREFIX = "**Builds on:**", "**Next:**"


@dataclass(frozen=True)
class Part:
    """A reading track: lessons that read well in this order, each track on its own."""

    title: str
    lessons: tuple[int, ...]


#: The five reading tracks of 00_start_here; every lesson is in exactly one (the quiz filters by them).
PARTS: tuple[Part, ...] = (
    Part("The Transformer from the inside", (21, 30, 20, 22, 19, 44, 15, 46, 48)),
    Part("Training and its mathematics", (29, 25, 28, 41, 23, 27, 24, 26, 16, 47)),
    Part("Text in, text out", (1, 14, 8, 3, 4, 10, 36)),
    Part("Pretraining", (5, 7, 9, 6, 32, 17, 37, 45, 49)),
    Part("Adapting and using models", (2, 12, 33, 13, 35, 40, 11, 39, 42, 34, 38, 43, 50, 18, 31)),
)


def _by_number(number: int) -> Lesson:
    return LESSONS[number - 1]


def _link(lesson: Lesson, folder: Path) -> str:
    """A markdown link to the lesson's notebook, or its title marked planned if it does not exist yet."""
    title = f"{lesson.number:02d} · {lesson.question}"
    return f"[{title}]({lesson.notebook})" if lesson.exists(folder) else f"{title} (planned)"


def link_lines(number: int, folder: Path = NOTEBOOKS) -> tuple[str, str]:
    """The "Builds on" line of lesson ``number``'s first cell and the "Next" line that ends it.

    Next is the following lesson that exists in ``folder`` (after the last one: back to 00).
    """
    lesson = _by_number(number)
    earlier = BUILDS_ON[lesson.number]
    builds_on = (f"{BUILDS_ON_PREFIX} " + ", ".join(_link(_by_number(n), folder) for n in earlier) if earlier
                 else f"{BUILDS_ON_PREFIX} nothing before it; a good place to start.")
    following = [other for other in LESSONS[number:] if other.exists(folder)]
    target = _link(following[0], folder) if following else "[00 · Start here](00_start_here.ipynb)"
    return builds_on, f"{NEXT_PREFIX} {target}"


def _with_line(source: str, prefix: str, line: str, separator: str) -> str:
    """``source`` with its line starting with ``prefix`` replaced by ``line``, or ``line`` appended."""
    kept = [row for row in source.rstrip("\n").split("\n") if not row.startswith(prefix)]
    while kept and kept[-1] in ("", "---"):
        kept.pop()
    return "\n".join(kept) + separator + line


def write_lesson_links(folder: Path = NOTEBOOKS) -> list[str]:
    """Write the "Builds on" line into every existing lesson's first cell and the "Next" line at the end
    of its last cell (markdown only: outputs are untouched); returns the notebooks changed."""
    import nbformat  # imported here: only this writer needs it

    changed = []
    for lesson in LESSONS:
        if not lesson.exists(folder):
            continue
        path = folder / lesson.notebook
        nb = nbformat.read(path, as_version=4)
        builds_on, next_line = link_lines(lesson.number, folder)
        first, last = nb.cells[0], nb.cells[-1]
        if first.cell_type != "markdown" or last.cell_type != "markdown":
            raise ValueError(f"notebook {path.name} must start and end with a markdown cell")
        new_first = _with_line(first.source, BUILDS_ON_PREFIX, builds_on, "\n\n")
        new_last = _with_line(last.source, NEXT_PREFIX, next_line, "\n\n---\n\n")
        if (new_first, new_last) != (first.source, last.source):
            first.source, last.source = new_first, new_last
            nbformat.write(nb, path)
            changed.append(lesson.notebook)
    return changed


def markdown_table(link_prefix: str = "notebooks/", folder: Path = NOTEBOOKS) -> str:
    """The fifty lessons as a markdown table; existing notebooks are linked, modules in code."""
    rows = ["| # | Question | Notebook | Builds on | Library modules |", "|---:|---|---|---|---|"]
    for lesson in LESSONS:
        name = lesson.notebook
        cell = f"[{name}]({link_prefix}{name})" if lesson.exists(folder) else f"{name} (planned)"
        earlier = ", ".join(f"{n:02d}" for n in BUILDS_ON[lesson.number]) or "-"
        modules = ", ".join(f"`{m}`" for m in lesson.modules)
        rows.append(f"| {lesson.number} | {lesson.question} | {cell} | {earlier} | {modules} |")
    return "\n".join(rows)


README = NOTEBOOKS.parent / "README.md"
START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"


def write_readme_table(readme: Path = README) -> None:
    """Replace the table between the README's syllabus markers with the current one."""
    text = readme.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"readme {readme} must contain {START} and {END} once each")
    if text.index(START) > text.index(END):
        raise ValueError(f"readme {readme} has {END} before {START}; the table goes between them")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    readme.write_text(f"{head}{START}\n{markdown_table()}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Rewrite the README's table, or print it with ``--print``; unknown arguments are an error."""
    parser = argparse.ArgumentParser(description="Write the syllabus table into README.md "
                                                 "(between its syllabus markers).")
    parser.add_argument("--print", action="store_true", help="print the table instead of writing it")
    parser.add_argument("--links", action="store_true", help="write every notebook's Builds-on and Next lines")
    args = parser.parse_args(argv)
    if args.print:
        print(markdown_table())
    elif args.links:
        for name in write_lesson_links():
            print(f"updated {name}")
    else:
        write_readme_table(README)


if __name__ == "__main__":
    main()
