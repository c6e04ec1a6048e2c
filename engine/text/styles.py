"""A1111's styles.csv: named prompt snippets that users carry from tool to tool, applied to a prompt on request.

A style's prompt holds `{prompt}` where the user's prompt goes; without it, the style's text is appended after
", ". The negative prompt is merged the same way. The file is read again when it changes, so edits apply
without a restart.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from engine.text.limits import excerpt

REPO_ROOT = Path(__file__).resolve().parents[2]  # the app folder (engine.pipeline.models says the same; no torch here)
APP_STYLES = REPO_ROOT / "styles.csv"  # where A1111 keeps it: the app folder
EXAMPLE_STYLES = REPO_ROOT / "presets" / "styles.csv"  # shipped examples, used when the app folder has none
PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Style:
    """One row of styles.csv."""

    name: str
    prompt: str = ""  # with {prompt} where the user's prompt goes; else appended after ", "
    negative_prompt: str = ""  # merged into the negative prompt the same way


def merge_prompt(style_text: str, prompt: str) -> str:
    """A1111's rule: fill {prompt} in, or join the two with ", " leaving out empty parts."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


def apply_styles(styles: dict[str, Style], names: list[str] | None, prompt: str,
                 negative_prompt: str) -> tuple[str, str]:
    """The prompt and negative prompt with the named styles applied in order, as A1111 applies them."""
    for name in names or []:
        if name not in styles:
            known = ", ".join(styles) or "none: the styles file is empty or missing"
            raise ValueError(f"There is no style named {excerpt(name)}; the styles are: {known}.")
        style = styles[name]
        prompt = merge_prompt(style.prompt, prompt)
        negative_prompt = merge_prompt(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt


def read_styles(path: str | Path) -> dict[str, Style]:
    """Styles by name from an A1111 styles.csv (columns name, prompt, negative_prompt; "text" for old files).

    Rows with an empty name or a name starting with "#" are skipped; a later row wins over an earlier one of the
    same name, as in A1111. A file that is not such a CSV raises ValueError saying what is wrong.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.DictReader(file, skipinitialspace=True)
            columns = [c.strip() for c in reader.fieldnames or []]
            if "name" not in columns or not ({"prompt", "text"} & set(columns)):
                raise ValueError(f"The styles file {path} needs a header row with the columns name, prompt and "
                                 f"negative_prompt (as A1111 writes it); its first row is {columns or 'empty'}.")
            styles = {}
            for row in reader:
                row = {(key or "").strip(): value or "" for key, value in row.items() if isinstance(value, str)}
                name = row.get("name", "").strip()
                if name and not name.startswith("#"):
                    styles[name] = Style(name, row.get("prompt", row.get("text", "")), row.get("negative_prompt", ""))
            return styles
    except FileNotFoundError:
        raise ValueError(f"The styles file {path} was not found; check the path given to --styles.") from None
    except UnicodeDecodeError:
        raise ValueError(f"The styles file {path} is not UTF-8 text; save it as a UTF-8 CSV.") from None
    except (csv.Error, OSError) as exc:
        raise ValueError(f"The styles file {path} can't be read as CSV ({exc}).") from None


def default_path() -> Path:
    """STUDIO_STYLES, else styles.csv in the app folder, else the shipped examples (presets/styles.csv)."""
    chosen = os.environ.get("STUDIO_STYLES")
    if chosen:
        return Path(chosen)
    return APP_STYLES if APP_STYLES.is_file() else EXAMPLE_STYLES


class StyleFile:
    """A styles.csv read on demand and again whenever it changes on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stamp: tuple[float, int] | None = None
        self._styles: dict[str, Style] = {}

    def styles(self) -> dict[str, Style]:
        """The current styles; an empty dict when the file is gone (styles are optional)."""
        try:
            stat = self.path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            self._styles, self._stamp = read_styles(self.path), stamp
        return self._styles

    def names(self) -> list[str]:
        return list(self.styles())

    def apply(self, names: list[str] | None, prompt: str, negative_prompt: str) -> tuple[str, str]:
        """apply_styles with this file's styles; no names leaves the prompts exactly as they are."""
        if not names:
            return prompt, negative_prompt
        return apply_styles(self.styles(), names, prompt, negative_prompt)


_active: StyleFile | None = None


def open_styles(path: str | Path | None = None) -> StyleFile:
    """The styles file at `path` (None: default_path()), read now so a bad file is reported at once.

    A chosen path that does not exist is an error; a missing default is not (styles are optional).
    """
    style_file = StyleFile(path or default_path())
    if path and not style_file.path.is_file():
        raise ValueError(f"The styles file {style_file.path} was not found; check the path given to --styles.")
    style_file.styles()
    return style_file


def use_styles(path: str | Path | None = None) -> StyleFile:
    """Choose the app's styles file at start-up (see open_styles), so a bad file is reported before it serves."""
    global _active
    _active = open_styles(path)
    return _active


def active_styles() -> StyleFile:
    """The styles file chosen at start-up, or the default one when none was chosen."""
    return _active or StyleFile(default_path())
