"""Refresh ui/vendor/ from the versions pinned in ui/package.json and package-lock.json:
`npm ci` into a scratch folder, copy the browser builds listed in FILES, record their
versions and SHA-256 in vendor/VERSIONS.json (a test checks the files against it, and the
versions against the lockfile, so a stale or hand-edited copy fails the suite).

    python -m skiplock.ui.vendoring
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from skiplock.ui import ASSETS

# package → [(file inside the package, name in vendor/)]
FILES: dict[str, list[tuple[str, str]]] = {
    "preact": [("dist/preact.module.js", "preact.module.js"), ("hooks/dist/hooks.module.js", "hooks.module.js"),
               ("LICENSE", "LICENSE.preact")],
    "htm": [("dist/htm.module.js", "htm.module.js"), ("LICENSE", "LICENSE.htm")],
    "uplot": [("dist/uPlot.esm.js", "uPlot.esm.js"), ("dist/uPlot.min.css", "uPlot.min.css"),
              ("LICENSE", "LICENSE.uplot")],
    "cronstrue": [("dist/cronstrue.min.js", "cronstrue.min.js"), ("LICENSE", "LICENSE.cronstrue")],
}
VENDOR = ASSETS / "vendor"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locked_versions() -> dict[str, str]:
    lock = json.loads((ASSETS / "package-lock.json").read_text())
    return {name: lock["packages"][f"node_modules/{name}"]["version"] for name in FILES}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(ASSETS / name, tmp)
        subprocess.run(["npm", "ci", "--silent", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp, check=True)
        VENDOR.mkdir(exist_ok=True)
        record: dict[str, dict[str, object]] = {}
        for package, files in FILES.items():
            root = Path(tmp) / "node_modules" / package
            version = json.loads((root / "package.json").read_text())["version"]
            for src, dst in files:
                shutil.copy(root / src, VENDOR / dst)
            record[package] = {"version": version, "files": {dst: sha256(VENDOR / dst) for _, dst in files}}
    (VENDOR / "VERSIONS.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    done = ", ".join(f"{p} {r['version']}" for p, r in record.items())
    print(f"vendored {done} into {VENDOR}")


if __name__ == "__main__":
    main()
