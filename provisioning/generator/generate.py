"""Writes the dashboards of provisioning/dashboards/ from the code in this folder.

    python3 provisioning/generator/generate.py           # rewrite the JSON files
    python3 provisioning/generator/generate.py --check   # fail if a committed file differs

Run it with the pinned SDK (requirements.txt); the test suite runs the --check form, so the
committed JSON is always what this code generates.
"""

import argparse
import json
import pathlib
import sys

from grafana_foundation_sdk.cog.encoder import JSONEncoder

import common
import databases
import infrastructure
import kubernetes
import quiver_dashboards

OUT = pathlib.Path(__file__).resolve().parent.parent / "dashboards"


def tidy(dashboard: dict) -> dict:
    """What the SDK's Grafana 10.1 models leave for Grafana to fill in: panels without
    options get an empty object (Grafana applies the plugin's defaults to it, not to null),
    and variables lose the placeholder id (Grafana keys them by name)."""
    def panels(items):
        for panel in items:
            if panel.get("options") is None and panel.get("type") != "row":
                panel["options"] = {}
            panels(panel.get("panels") or [])

    panels(dashboard.get("panels") or [])
    for variable in dashboard.get("templating", {}).get("list", []):
        variable.pop("id", None)
    return dashboard


def render() -> dict[pathlib.Path, str]:
    files = {}
    for module in (infrastructure, databases, kubernetes, quiver_dashboards):
        for folder, builders in module.DASHBOARDS.items():
            for build in builders:
                model = build().build()
                model.schema_version = common.SCHEMA_VERSION
                raw = json.loads(JSONEncoder(sort_keys=True).encode(model))
                text = json.dumps(tidy(raw), sort_keys=True, indent=2) + "\n"
                files[OUT / folder / f"{model.uid}.json"] = text
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    files = render()
    stale = []
    for path, text in sorted(files.items()):
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(OUT.parent.parent)}")
    known = set(files)
    extra = [p for p in OUT.glob("*/*.json") if p not in known]
    if args.check and (stale or extra):
        for path in stale:
            print(f"differs from the generator: {path}", file=sys.stderr)
        for path in extra:
            print(f"not made by the generator: {path}", file=sys.stderr)
        return 1
    for path in extra:
        if not args.check:
            path.unlink()
            print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
