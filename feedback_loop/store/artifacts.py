"""Artifacts: a model's bytes, written once, verified by SHA-256 before every load.

Unpickling runs code, so nothing is deserialised unless its bytes hash to what the registry
recorded when the version was registered.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

from feedback_loop.errors import FeedbackLoopError


class ArtifactIntegrityError(FeedbackLoopError):
    """An artifact's bytes do not match the hash recorded at registration."""


class Serializer(Protocol):
    name: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JoblibSerializer:
    """scikit-learn's recommended persistence (joblib ships with scikit-learn)."""

    name = "joblib"

    def dumps(self, obj: Any) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(obj, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))


class PickleSerializer:
    name = "pickle"

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


SERIALIZERS: dict[str, Serializer] = {"joblib": JoblibSerializer(), "pickle": PickleSerializer()}


def register_serializer(serializer: Serializer) -> None:
    """Make a serializer available by name (for models that are not scikit-learn objects)."""
    SERIALIZERS[serializer.name] = serializer


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size_bytes: int
    serializer: str


class LocalArtifactStore:
    """Artifacts in a folder: ``ROOT/MODEL/UNIQUE-ID/model.bin``, written atomically."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def put(self, model: str, obj: Any, serializer: str = "joblib") -> StoredArtifact:
        chosen = SERIALIZERS.get(serializer)
        if chosen is None:
            raise FeedbackLoopError(
                f"unknown serializer {serializer!r}; known: {', '.join(SERIALIZERS)}"
            )
        data = chosen.dumps(obj)
        folder = self._folder(model)
        folder.mkdir(parents=True, exist_ok=False)
        path = folder / "model.bin"
        tmp = folder / ".model.bin.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return StoredArtifact(
            uri=path.resolve().as_uri(),
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            serializer=chosen.name,
        )

    def _folder(self, model: str) -> Path:
        """A new folder for one artifact of ``model``, checked to lie inside the root whatever
        the name holds (names are validated upstream; this does not rely on it)."""
        root = self.root.resolve()
        folder = (root / _safe(model) / uuid.uuid4().hex).resolve()
        if not folder.is_relative_to(root) or folder.parent.parent != root:
            raise FeedbackLoopError(f"model {model!r} cannot name a folder of the artifact root")
        return folder

    @staticmethod
    def get(uri: str, sha256: str, serializer: str) -> Any:
        """Load an artifact after checking its bytes against ``sha256``."""
        path = _path_of(uri)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(f"artifact {uri} is missing") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ArtifactIntegrityError(
                f"artifact {uri} has sha256 {digest[:12]}…, registered {sha256[:12]}…: refusing "
                "to load it"
            )
        chosen = SERIALIZERS.get(serializer)
        if chosen is None:
            raise FeedbackLoopError(f"unknown serializer {serializer!r}")
        return chosen.loads(data)


def _safe(name: str) -> str:
    """The folder of a model: its name percent-encoded (UTF-8) except ASCII letters, digits
    and ``-_.``, a leading dot encoded too: one plain segment, never hidden, that
    cannot be ``.`` or ``..`` nor hold a separator, and two names never share a folder."""
    encoded = quote(name, safe="", encoding="utf-8").replace("~", "%7E")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded or "model"


def _path_of(uri: str) -> Path:
    """The file a ``file://`` URI names, percent-decoded (``Path.as_uri`` encodes spaces and
    non-ASCII letters on write)."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise FeedbackLoopError(f"unsupported artifact location {uri!r}")
    return Path(url2pathname(parts.path))
