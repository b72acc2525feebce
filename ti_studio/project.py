"""A project: one subject's folder, holding its dataset crops, captions and training runs.

Layout (DESIGN §3): ``project.json`` (the photo folder the crops came from: read, never written), ``dataset/``
(crops + ``.txt`` captions, with ``dataset/.ti_studio/`` for crop parameters, caption backups and the undo
journal), ``runs/<embedding name>/`` (one training run each) and ``compare/<run>/`` (the snapshots a comparison
loaded into WebUI, under their comparison names). The tab works on one project at a time, so the
user types a name once instead of three folder paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import fileio
from .errors import UserError
from .training.config import check_embedding_name
from .training.run_files import RunFolder

PROJECT_FILE = "project.json"


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, embedding_name: str) -> Path:
        return self.runs / embedding_name

    def compare_dir(self, run_name: str) -> Path:
        return self.root / "compare" / run_name

    def source(self) -> str:
        """The photo folder last cropped from ("" before the first crop)."""
        data = fileio.read_json(self.root / PROJECT_FILE) if (self.root / PROJECT_FILE).is_file() else {}
        return str(data.get("source", "")) if isinstance(data, dict) else ""

    def remember_source(self, source: str | Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fileio.write_json(self.root / PROJECT_FILE, {"source": str(Path(source).resolve())})

    def run_names(self) -> list[str]:
        """Runs that have a config (started at least once), newest first."""
        if not self.runs.is_dir():
            return []
        runs = [path for path in self.runs.iterdir() if RunFolder(path, "").config.is_file()]
        return [path.name for path in sorted(runs, key=lambda path: path.stat().st_mtime, reverse=True)]


def open_project(projects_root: str | Path, name: str) -> Project:
    """The project ``name`` under ``projects_root`` (not created until something is written into it).

    Project names follow the embedding-name rules, so a project's name can also be the embedding's.
    """
    name = name.strip()
    if not name:
        raise UserError("give the project a name (for example the person's name)")
    try:
        check_embedding_name(name)
    except UserError as error:
        raise UserError(str(error).replace("embedding name", "project name")) from None
    return Project(Path(projects_root) / name)


def project_names(projects_root: str | Path) -> list[str]:
    root = Path(projects_root)
    if not root.is_dir():
        return []
    return sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
