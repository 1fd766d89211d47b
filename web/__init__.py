"""The browser files (agent console). Shipped as package data; `WEB_DIR` is where they are."""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
