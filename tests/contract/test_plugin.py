"""The plugin seam for real: a third-party connector kind installed with pip and found by its entry point.

The sample package (tests/plugins/screenpop-sample-plugin) is built by pip with hatchling and installed
into a temporary folder; the checks run in subprocesses that have that folder on PYTHONPATH, exactly as
if the package had been installed next to screenpop.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "screenpop-sample-plugin"
TIMEOUT_S = 60

LOOKUP_SCRIPT = """
import asyncio, json
from screenpop.config import parse_config
from screenpop.phone import normalize
from screenpop.plugins import connector_kinds
from screenpop.wiring import build_lookup

async def main():
    config = parse_config({"connectors": [
        {"name": "who", "kind": "sample", "role": "identity"},
        {"name": "hello", "kind": "sample", "role": "section", "options": {"greeting": "hi"}},
    ]})
    lookup = build_lookup(config)
    sections = []

    async def emit(section):
        sections.append(section.model_dump(mode="json"))

    for source in lookup.sources:
        await source.connector.start()
    try:
        await asyncio.wait_for(lookup.run(normalize("+14155550100"), None, emit), 10)
    finally:
        for source in lookup.sources:
            await source.connector.close()
    return sections

kinds = connector_kinds()
print(json.dumps({"kinds": {k: v.__module__ for k, v in kinds.items()}, "sections": asyncio.run(main())}))
"""


def run(args: list[str], env_path: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if env_path is not None:
        env["PYTHONPATH"] = str(env_path)
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample plugin, built and installed by pip into a temporary folder (not into the venv)."""
    need(importlib.util.find_spec("hatchling") is not None, "hatchling is not installed (the plugin's build backend)")
    tmp = tmp_path_factory.mktemp("plugin")
    source, target = tmp / "src", tmp / "site"
    shutil.copytree(PLUGIN, source)  # the build never writes into the repository
    done = run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)], None, tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def test_installed_plugin_kind_serves_a_lookup(plugin_dir: Path, tmp_path: Path) -> None:
    """With the plugin installed, connector_kinds() lists `sample` and a full lookup goes through it."""
    done = run([sys.executable, "-c", LOOKUP_SCRIPT], plugin_dir, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["kinds"]["sample"] == "screenpop_sample_plugin"
    assert result["kinds"]["http"] == "connectors.http"  # the built-in kinds are still there
    sections = {s["name"]: s for s in result["sections"]}
    assert sections["customer"]["status"] == "ok"
    assert sections["customer"]["data"]["customer"]["id"] == "S-1"
    assert sections["hello"]["status"] == "ok"
    assert sections["hello"]["data"] == {"id": "S-1", "name": "Sample Customer", "greeting": "hi"}


def test_without_the_plugin_the_kind_is_unknown(tmp_path: Path) -> None:
    """Without the package on the path, `sample` is not a known kind (the install above is what adds it)."""
    script = "from screenpop.plugins import connector_kinds; print(sorted(connector_kinds()))"
    done = run([sys.executable, "-c", script], None, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sample" not in done.stdout
    assert "'csv', 'http', 'offers', 'sql'" in done.stdout  # the built-ins come through their entry points


def test_check_config_accepts_the_plugin_kind(plugin_dir: Path, tmp_path: Path) -> None:
    """`screenpop check-config` accepts a config using kind `sample` once the plugin is installed."""
    cli = Path(sys.executable).with_name("screenpop")
    need(cli.exists(), f"the screenpop command is not installed next to {sys.executable}")
    config = tmp_path / "config.yaml"
    config.write_text("connectors:\n  - {name: who, kind: sample, role: identity, options: {greeting: hey}}\n")
    done = run([str(cli), "check-config", str(config)], plugin_dir, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok (0 agents, 1 connectors)" in done.stdout
    unknown = run([str(cli), "check-config", str(config)], None, tmp_path)
    assert unknown.returncode != 0
    assert "unknown connector kind 'sample'" in unknown.stdout + unknown.stderr
