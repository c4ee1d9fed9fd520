"""The interview layer, built from the lessons' tagged cells: flashcards (`cards`), an Anki deck,
a cheat sheet, a quiz, and the key-numbers table from the registry of cited numbers.

Left out: any text of its own; every card, question and number comes from a notebook or from
`data/cited_numbers.json`, so a corrected lesson corrects what is built from it.
"""

__all__: list[str] = []  # nothing is re-exported: import the modules by name (cards, anki, quiz, ...)
