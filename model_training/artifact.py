"""Find a model artifact's folder: the zip, its unpacked folder, or the folder `train --out` wrote.

Loading and running the models is device_code.model's job (the one runtime of the project).
"""
from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

UNPACKED_NAME = "rain_model"


class ModelArtifactError(Exception):
    """The model path is missing or not a model artifact."""


def artifact_folder(path: Path) -> Path | None:
    """The unpacked artifact at `path`: the folder itself, or its rain_model/ (the `train --out`
    folder); None when neither holds metadata.json."""
    for candidate in (path, path / UNPACKED_NAME):
        if candidate.is_dir() and (candidate / "metadata.json").is_file():
            return candidate
    return None


@contextlib.contextmanager
def opened_artifact(path: Path) -> Iterator[Path]:
    """Yield a folder holding metadata.json, model.tflite and saved_model/.

    `path` may be the zip, its unpacked folder, or the folder `train --out` wrote (which holds both).
    """
    path = Path(path)
    folder = artifact_folder(path)
    if folder is not None:
        yield folder
    elif path.is_file():
        if not zipfile.is_zipfile(path):
            raise ModelArtifactError(f"model {path} is not a zip file")
        with tempfile.TemporaryDirectory(prefix="rain_model_") as scratch:
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(scratch)
            except (zipfile.BadZipFile, OSError) as error:
                raise ModelArtifactError(f"model zip {path} cannot be unpacked: {error}") from error
            if not (Path(scratch) / "metadata.json").is_file():
                raise ModelArtifactError(f"model zip {path} has no metadata.json at its root")
            yield Path(scratch)
    elif path.exists():
        raise ModelArtifactError(f"model folder {path} holds no metadata.json (nor {UNPACKED_NAME}/metadata.json)")
    else:
        raise ModelArtifactError(f"model path {path} does not exist")
