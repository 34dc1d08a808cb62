"""The app's own settings in the data dir (`tui.toml`): contacts, added seeds, theme and alerts.

A file that cannot be read is kept aside, and a saved seed that is no longer a usable URL is
skipped with a warning: nothing in this file can stop the app from starting.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

from node.errors import InvalidInput

from .seed_url import check_seed_url

log = logging.getLogger("p2p.tui")

Desktop = Literal["off", "osc9", "osc777"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: list[str] = []
    seeds: list[str] = []
    theme: str | None = None
    bell: bool = False  # ring the terminal bell for a message not seen (see notifier.py)
    desktop: Desktop = "off"  # and/or ask the terminal for a desktop notification
    full_times: bool = False  # dates and seconds on every line, not just HH:MM
    private: bool = False  # desktop notifications name the sender, never the text
    logs: list[str] = []  # conversations (folded names, '#' and id for a group) kept in logs/

    @classmethod
    def load(cls, path: Path) -> tuple[Settings, list[str]]:
        """The settings, and warnings for what was unusable (a bad file is kept aside, not lost)."""
        if not path.exists():
            return cls(), []
        try:
            settings = cls.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError, OSError, UnicodeDecodeError) as exc:
            backup = path.with_suffix(".toml.bad")
            try:
                path.replace(backup)
            except OSError:
                pass
            first = str(exc).splitlines()[0]
            return (
                cls(),
                [f"{path.name} was unusable ({first}); kept as {backup.name}, starting afresh"],
            )
        warnings = []
        seeds = []
        for url in settings.seeds:
            try:
                seeds.append(check_seed_url(url))
            except InvalidInput as exc:
                warnings.append(f"{path.name}: skipped the saved seed {exc}")
        settings.seeds = seeds
        return settings, warnings

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(tomli_w.dumps(self.model_dump(exclude_none=True)), encoding="utf-8")
        tmp.replace(path)
