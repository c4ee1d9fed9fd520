"""nbgrader configuration of the course: run nbgrader from the repository root.

    nbgrader generate_assignment notebooks --force   # release/notebooks/: the student edition
    nbgrader autograde notebooks                     # grades submitted/<student>/notebooks/

See course_lib/tooling/nbgrader_plugin.py (needs the `instructor` extra: pip install -e ".[instructor]").
"""

from course_lib.tooling.nbgrader_plugin import configure

configure(get_config())  # noqa: F821 (nbgrader defines get_config when it reads this file)
