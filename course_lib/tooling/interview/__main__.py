"""Command line of the interview layer.

    python -m course_lib.tooling.interview build [FOLDER]   # deck, cheat sheet and cards (build/interview)
    python -m course_lib.tooling.interview quiz [--order random --seed 3] [--parts 1,2] [--lessons 3,5-7]
                                                [--kinds mistake] [--mock] [--limit 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from course_lib.tooling.interview.build import build
from course_lib.tooling.interview.cards import KINDS, course_cards
from course_lib.tooling.interview.cheatsheet import reading_minutes
from course_lib.tooling.interview.quiz import ORDERS, quiz_order, run_quiz

__all__ = ["DEFAULT_FOLDER", "number_list", "main"]

DEFAULT_FOLDER = Path("build/interview")


def number_list(text: str) -> list[int]:
    """``"3,5-7"`` -> ``[3, 5, 6, 7]``; anything else raises argparse's error."""
    try:
        result = []
        for piece in text.split(","):
            low, _, high = piece.partition("-")
            result += list(range(int(low), int(high or low) + 1))
        return result
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers such as 3,5-7, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tooling.interview", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write the deck, the cheat sheet and the cards")
    build_parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    quiz = commands.add_parser("quiz", help="ask questions one at a time")
    quiz.add_argument("--order", choices=ORDERS, default="course")
    quiz.add_argument("--seed", type=int, default=0)
    quiz.add_argument("--parts", type=number_list, help="reading tracks, e.g. 1,3 (00_start_here lists them)")
    quiz.add_argument("--lessons", type=number_list, help="lesson numbers, e.g. 3,5-7")
    quiz.add_argument("--kinds", type=lambda text: text.split(","), help=f"some of {','.join(KINDS)}")
    quiz.add_argument("--mock", action="store_true", help="each lesson's question, then its follow-ups")
    quiz.add_argument("--limit", type=int, help="ask at most this many questions")
    args = parser.parse_args(argv)
    if args.command == "build":
        paths = build(args.folder)
        sheet = next(path for path in paths if path.name == "cheat_sheet.md").read_text(encoding="utf-8")
        print(f"{len(course_cards())} cards; the cheat sheet reads in about {reading_minutes(sheet):.0f} minutes")
        for path in paths:
            print(path)
        return
    try:
        cards = quiz_order(course_cards(), args.order, args.seed, args.mock, args.parts, args.lessons, args.kinds)
    except ValueError as error:
        parser.error(str(error))
    run_quiz(cards[:args.limit] if args.limit else cards)


if __name__ == "__main__":
    main()
