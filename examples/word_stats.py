"""Count words per document and in total, then write a CSV report at the end."""

import csv
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent


def analyse(line):
    """Stand-in for per-document work (parsing, an API call, a model...)."""
    time.sleep(0.2)  # the real work takes time
    return Counter(word.strip(".,;").lower() for word in line.split())


totals = Counter()
rows = [["document", "words", "distinct"]]
for number, line in enumerate((HERE / "data" / "documents.txt").read_text().splitlines()):
    counts = analyse(line)
    totals.update(counts)
    rows.append([number, sum(counts.values()), len(counts)])

with open("word_stats.csv", "w", newline="") as handle:
    csv.writer(handle).writerows(rows)
print("most common:", totals.most_common(3))
