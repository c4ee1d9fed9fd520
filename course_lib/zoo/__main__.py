"""``python -m course_lib.zoo``: the zoo's command line (`course_lib.zoo.main`)."""

from course_lib.zoo import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
