"""course_lib: the companion library of the course on how large language models work.

Modules are named for concepts (``tokenization``, ``attention``, ``decoding``, ...); a notebook
imports what it needs. ``course_lib.notebook.runtime.setup`` is the one call every notebook makes first.
"""

__all__: list[str] = []  # nothing is re-exported: import the modules by name (course_lib.attention, ...)

__version__ = "0.1.0"
