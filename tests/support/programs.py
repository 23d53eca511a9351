"""Small Python programs the command-line tests feed to checkpointify (as bytes, as on disk)."""

#: the README's seed job: a collect-then-save loop with a safe fix
JOB = b"""import json

from work import expensive_operation

results = []
for item in range(10):
    results.append(expensive_operation(item))
json.dump(results, open("results.json", "w"))
"""

#: the seed job as a script whose work is a call to an unknown name (a finding with a safe fix)
SCRIPT = b"""import json

results = []
for item in range(10):
    results.append(work(item))
json.dump(results, open("results.json", "w"))
"""

#: nothing to find
CLEAN = b"def add(a, b):\n    return a + b\n"

#: a finding whose fix is unsafe (resume by identity needs containers, so the order hazard stays)
UNSAFE = b"""import json
import os

names = ""  # a string: resume by identity needs containers, so the order hazard stays
for name in os.listdir("."):
    names += describe(name)
json.dump(names, open("names.json", "w"))
"""

#: a finding with no fix (the loop reorders the accumulator)
NO_FIX = b"""import json

acc = []
for x in xs:
    acc.append(work(x))
    acc.sort()
json.dump(acc, out)
"""

#: a syntax error in a file that could hold a finding (a loop and a save): such a file is
#: parsed and reported; one that could not hold any is not parsed at all
BROKEN = b"for x in (:\n    save(x)\n"
