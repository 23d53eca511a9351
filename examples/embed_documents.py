"""Embed every document of a corpus and save the vectors: a typical collect-then-save job.

Run it with `python examples/embed_documents.py`; each document takes a second of "model
time", and the vectors are written to embeddings.json only at the very end.
"""

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def embed(text):
    """Stand-in for a slow model call."""
    print("embedding:", text[:40], file=sys.stderr)
    time.sleep(1.0)
    return [round(len(word) / 10, 2) for word in text.split()[:4]]


def main():
    documents = (HERE / "data" / "documents.txt").read_text().splitlines()
    vectors = []
    for doc in documents:
        vectors.append({"text": doc, "vector": embed(doc)})
    with open("embeddings.json", "w") as out:
        json.dump(vectors, out, indent=1)
    print("saved", len(vectors), "vectors", file=sys.stderr)


if __name__ == "__main__":
    main()
