"""What rendering needs to know about one warning, and which CAP info block a person gets.

Build one :class:`WarningView` per warning (from its stored row and the settings) and render
from it for every delivery: results are cached per (channel, language) on the view, so a
million deliveries of one warning render a handful of texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warnpub.cap.model import Alert, Info, Level
from warnpub.config import Settings
from warnpub.render.words import primary

if TYPE_CHECKING:
    from warnpub.storage.tables import WarningRecord


@dataclass(frozen=True, eq=False)
class WarningView:
    """One warning as the templates see it, with the render settings it is sent under."""

    id: str
    alert: Alert
    level: Level | None
    # The hazard's name by primary language ({"zh": "暴雨", "en": "Rainstorm"}), from [cap.hazards].
    hazard_names: Mapping[str, str]
    full_text_url: str
    sms_max_parts: int = 3
    default_language: str = "zh-CN"
    headline: str = ""  # the stored headline (used when a bare Cancel has no info block)
    cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_record(cls, record: WarningRecord, settings: Settings) -> WarningView:
        """The view of a stored warning (``record.alert`` is ``Alert.model_dump(mode="json")``)."""
        return cls.from_alert(
            Alert.model_validate(record.alert),
            settings,
            warning_id=record.id,
            level=Level(record.level) if record.level else None,
            hazard=record.hazard,
            headline=record.headline,
        )

    @classmethod
    def from_alert(
        cls,
        alert: Alert,
        settings: Settings,
        *,
        warning_id: str,
        level: Level | None = None,
        hazard: str | None = None,
        headline: str = "",
    ) -> WarningView:
        """The view of an alert; ``level`` defaults to the alert's own level."""
        known = settings.cap.hazards.get(hazard or "")
        return cls(
            id=warning_id,
            alert=alert,
            level=level if level is not None else alert.level,
            hazard_names={"zh": known.zh, "en": known.en} if known else {},
            full_text_url=settings.render.full_text_url.format(id=warning_id),
            sms_max_parts=settings.render.sms_max_parts,
            default_language=settings.render.default_language,
            headline=headline,
        )

    def info_for(self, language: str | None) -> Info | None:
        """The info block for a person who prefers ``language`` (None for a bare Cancel)."""
        return choose_info(
            self.alert.infos, language or self.default_language, self.default_language
        )


def match_language(wanted: str, available: list[str]) -> str | None:
    """``wanted`` itself among ``available`` (case-insensitive), else one with the same primary
    language (en-US for en, en for en-US), else None."""
    lowered = {lang.lower(): lang for lang in available}
    if wanted.lower() in lowered:
        return lowered[wanted.lower()]
    for lang in available:
        if primary(lang) == primary(wanted):
            return lang
    return None


def choose_info(infos: list[Info], language: str, default: str = "zh-CN") -> Info | None:
    """The info in ``language`` (exact, then same primary language), else in ``default``
    (exact, then same primary language), else the first one; None when there is none."""
    if not infos:
        return None
    languages = [info.language for info in infos]
    chosen = match_language(language, languages) or match_language(default, languages)
    return infos[languages.index(chosen)] if chosen else infos[0]
