"""One line per benchmark of a pytest-benchmark JSON: median seconds and extra_info.

python3 benchmarks/gpu/summary.py "$OUT/bench.json" > "$OUT/summary.txt"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summary(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = [f"{data.get('datetime', '')} {data.get('machine_info', {}).get('node', '')}"]
    for b in data["benchmarks"]:
        extra = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(b.get("extra_info", {}).items())
        )
        lines.append(f"{b['name']:<60} median {b['stats']['median'] * 1e3:10.3f} ms  {extra}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
