"""The app's own settings in the data dir (`tui.toml`): contacts and added seeds, kept between runs."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("p2p.tui")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: list[str] = []
    seeds: list[str] = []
    theme: str | None = None

    @classmethod
    def load(cls, path: Path) -> tuple[Settings, str | None]:
        """The settings, and a warning when the file was unusable (it is kept aside, not lost)."""
        if not path.exists():
            return cls(), None
        try:
            return cls.model_validate(tomllib.loads(path.read_text(encoding="utf-8"))), None
        except (tomllib.TOMLDecodeError, ValidationError, OSError) as exc:
            backup = path.with_suffix(".toml.bad")
            path.replace(backup)
            first = str(exc).splitlines()[0]
            return (
                cls(),
                f"{path.name} was unusable ({first}); kept as {backup.name}, starting afresh",
            )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(tomli_w.dumps(self.model_dump(exclude_none=True)), encoding="utf-8")
        tmp.replace(path)
