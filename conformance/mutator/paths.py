"""Where the mutation tool finds the library, the triage file and the
requirement catalogue: every path is from the repository, never from the
current folder, so the tool runs from anywhere."""
import os

CONFORMANCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(CONFORMANCE)
LIBRARY = os.path.join(ROOT, "impl", "include")
TRIAGE = os.path.join(CONFORMANCE, "mutation", "triage.txt")
CATALOGUE = os.path.join(CONFORMANCE, "spec", "catalogue.json")
