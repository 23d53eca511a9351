import sys
from pathlib import Path

# fixture_cases.py and the helpers next to it are imported by the tests as top-level modules
sys.path.insert(0, str(Path(__file__).parent))
