"""Course tooling: the syllabus table and the student edition. No lesson or concept module imports it."""

__all__: list[str] = []  # nothing is re-exported: import the modules by name (course_lib.tooling.syllabus, ...)
