"""axe-core (npm, tests/browser; scripts/browser.sh installs it) run inside a page in Chromium."""

import os
from typing import Any

import pytest

from harness.servers import ROOT

AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# Each violation as "rule: what it asks, at which elements".
REPORT = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
  v => v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", "))"""


def require_axe() -> None:
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("axe-core is not installed; scripts/browser.sh installs it with npm")
        pytest.skip("axe-core is not installed (scripts/browser.sh)")


def violations(page: Any) -> list[str]:
    """axe-core's violations on the page as it is now. The page's context must bypass its CSP
    (`bypass_csp=True`): the pages allow no script of ours."""
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(REPORT)
    return found
