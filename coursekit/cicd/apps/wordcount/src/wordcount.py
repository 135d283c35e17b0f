"""wordcount: the most common words of a text. The subject of exercise 08's buildspec question.

    python wordcount.pyz 3 < essay.txt      # the 3 most common words, one "count word" per line
"""
import re
import sys
from collections import Counter

WORD = re.compile(r"[a-z']+")


def words(text: str) -> list[str]:
    """The words of ``text``, in lower case (apostrophes kept: "don't" is one word)."""
    return [w.strip("'") for w in WORD.findall(text.lower()) if w.strip("'")]


def top(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The ``n`` most common words with their counts; ties in alphabetical order."""
    counts = Counter(words(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for word, count in top(sys.stdin.read(), n):
        print(count, word)


if __name__ == "__main__":
    main()
