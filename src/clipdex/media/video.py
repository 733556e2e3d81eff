"""Video files as frames: one item per frame sampled every N seconds, named ``video.mp4#t=12.000``.

Frames are decoded with PyAV (FFmpeg) on demand, so indexing a video costs one
seek and a short decode per sampled frame and no frame is ever written to disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

from PIL import Image

from clipdex.errors import DecodeError, MissingExtraError
from clipdex.media.sources import VIDEO_EXTENSIONS, Item

__all__ = ["VIDEO_EXTENSIONS", "expand_videos", "frame_times", "is_video", "read_frame", "split_frame_path"]

_FRAME = re.compile(r"^(?P<file>.+)#t=(?P<t>\d+(?:\.\d+)?)$")


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def split_frame_path(path: str) -> tuple[str, float] | None:
    """``("video.mp4", 12.0)`` for ``"video.mp4#t=12.000"``; None for anything else."""
    match = _FRAME.match(path)
    if not match or not is_video(match["file"]):
        return None
    return match["file"], float(match["t"])


def _av() -> object:
    try:
        import av
    except ImportError as e:
        raise MissingExtraError("video needs PyAV: pip install 'clipdex[video]'") from e
    return av


def frame_times(path: str, every: float) -> list[float]:
    """Sample times (seconds) every ``every`` seconds over the video's duration (at least the first frame).

    Raises:
        DecodeError: the file is not a readable video.
    """
    av = _av()
    try:
        with av.open(path) as container:  # type: ignore[attr-defined]
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (container.duration or 0) / 1_000_000
    except (IndexError, OSError, ValueError) as e:
        raise DecodeError(f"not a readable video: {e}") from e
    count = max(1, int(duration // every) + (1 if duration % every > 1e-6 else 0))
    return [round(i * every, 3) for i in range(count)]


def read_frame(path: str, t: float) -> Image.Image:
    """The first frame at or after ``t`` seconds (the last one when ``t`` is past the end).

    Raises:
        DecodeError: the file is missing, not a video, or has no frame.
    """
    av = _av()
    try:
        with av.open(path) as container:  # type: ignore[attr-defined]
            stream = container.streams.video[0]
            if t > 0 and stream.time_base:
                container.seek(int(t / stream.time_base), stream=stream, backward=True)
            last = None
            for frame in container.decode(stream):
                last = frame
                if frame.time is None or frame.time >= t - 1e-3:
                    break
            if last is None:
                raise DecodeError("the video has no frame")
            return last.to_image().convert("RGB")
    except DecodeError:
        raise
    except FileNotFoundError as e:
        raise DecodeError("file not found") from e
    except (IndexError, OSError, ValueError) as e:
        raise DecodeError(f"not a readable video: {str(e).splitlines()[0]}") from e


def expand_videos(items: Iterable[Item], every: float) -> Iterator[Item]:
    """Replace each video item by its sampled frames (metadata: ``video``, ``t``); images pass through.

    An unreadable video becomes one item whose decoding fails with the reason, so it is recorded.
    """
    for item in items:
        if not is_video(item.path):
            yield item
            continue
        try:
            times = frame_times(item.path, every)
        except DecodeError:
            yield Item(f"{item.path}#t=0.000", list(item.captions), {**item.metadata, "video": item.path, "t": 0.0})
            continue
        for t in times:
            yield Item(f"{item.path}#t={t:.3f}", list(item.captions), {**item.metadata, "video": item.path, "t": t})
