"""What the notebooks use to present a lesson: setup (runtime), exercise checks, display, plotting style,
widgets, token plots and the autograd graph. Concept modules never import it.
"""

__all__: list[str] = []  # nothing is re-exported: import the modules by name (course_lib.notebook.runtime, ...)
