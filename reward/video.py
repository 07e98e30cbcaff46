"""Video in and out: `read_video` is the one way videos come in, `write_video` the one way they go out.

Design decisions:
- Layout and dtype at this boundary: uint8 `[F, C, H, W]`, RGB, in and out.
- Reading decodes only the sampled frames (decord's `get_batch`, which seeks to the nearest key
  frame); PyAV is the fallback when decord is missing or cannot open the file, so both backends
  accept the same files and give the same frames.
- Sampling always returns exactly `num_frames` frames. `uniform` takes the centre of
  `num_frames` equal segments of the clip: index `floor((i + 0.5) * n / num_frames)`. A clip
  with fewer than `num_frames` frames therefore repeats its frames evenly (each frame about
  `num_frames / n` times, in order); a one-frame video gives `num_frames` copies. `fps` takes
  frames at `fps` frames per second from the start (index `floor(i * native_fps / fps)`); when
  the clip ends before `num_frames` such frames exist it falls back to `uniform` over the whole
  clip, so the output never holds a run of frozen frames that the clip did not have.
- Resizing squashes to the requested size (no crop) with antialiased bilinear interpolation on
  the sampled uint8 frames (benchmarks/bench_video_loading.py measures the cost).
- Every failure to read (missing, empty, truncated, not a video) is one exception type,
  `VideoReadError`, naming the file and the reason, so long jobs can skip and count bad files.
- Writing is H.264 in mp4, yuv420p (so H and W must be even), atomic (`reward.files.atomic_write`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from reward.commands import debug_enabled
from reward.files import atomic_write

try:  # decord has wheels for x86_64 only; PyAV reads everything decord reads.
    import decord

    decord.logging.set_level(decord.logging.QUIET)
except ImportError:  # pragma: no cover - exercised on platforms without decord wheels
    decord = None

__all__ = [
    "VideoReadError",
    "SAMPLING_MODES",
    "sample_indices",
    "resample_videos",
    "read_video",
    "write_video",
]

SAMPLING_MODES: tuple[str, ...] = ("uniform", "fps")
# decord's automatic thread count (0), as a bare VideoReader uses: one thread per reader was
# slower (benchmarks/bench_video_loading.py: 0.67 s vs 0.53 s per 480p clip on 2 cores).
DECODE_THREADS = 0
# x264 constant rate factor 18 is visually lossless, so pixel-level defects (noise, blur) survive.
# Macroblock-tree rate control off: with it on, identical frames sometimes encoded to different
# bytes within one process (measured on a noisy 64x64 clip: 12 different encodings in 100 writes
# with it on, one in 500 writes with it off), and a corpus must be byte-identical for a seed.
H264_OPTIONS = {"crf": "18", "x264-params": "mbtree=0"}
# Denominator bound when turning a float frame rate into the exact fraction the muxer needs.
MAX_FPS_DENOMINATOR = 1001


class VideoReadError(ValueError):
    """A video could not be read: `.path` names the file, `.reason` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.reason)


def sample_indices(
    num_available: int,
    num_frames: int,
    sampling: str = "uniform",
    native_fps: float | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """The `num_frames` frame indices (int64, ascending, possibly repeated) to take from a clip.

    `uniform`: the centre of each of `num_frames` equal segments, `floor((i + 0.5) * n / num_frames)`;
    a clip shorter than `num_frames` repeats its frames evenly. `fps`: `floor(i * native_fps / fps)`,
    frames at `fps` per second from the start, falling back to `uniform` when the clip is too short.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_available < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_available}")
    if sampling == "fps":
        if fps is None or fps <= 0 or native_fps is None or native_fps <= 0:
            raise ValueError(f"sampling='fps' needs positive fps and native_fps, got {fps} and {native_fps}")
        indices = np.floor(np.arange(num_frames) * (native_fps / fps)).astype(np.int64)
        if indices[-1] < num_available:
            return indices
    elif sampling != "uniform":
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_MODES}")
    return np.floor((np.arange(num_frames) + 0.5) * (num_available / num_frames)).astype(np.int64)


def resample_videos(videos: torch.Tensor, num_frames: int, size: int | tuple[int, int]) -> torch.Tensor:
    """float `[N, F, C, H, W]` → float `[N, num_frames, C, *size]`: the in-memory twin of `read_video`.

    Frames are picked with `sample_indices` ("uniform") when F differs from `num_frames`, and
    resized bilinearly with antialiasing when their size differs, so a tensor and the same video
    read from disk reach a model alike. Runs on `videos`' device; values are not rescaled.
    """
    if not videos.is_floating_point() or videos.ndim != 5:
        raise ValueError(f"videos must be float [N, F, C, H, W], got {videos.dtype} {list(videos.shape)}")
    hw = _size_hw(size)
    n, f = videos.shape[:2]
    if f != num_frames:
        index = torch.from_numpy(sample_indices(f, num_frames)).to(videos.device)
        videos = videos.index_select(1, index)
    if tuple(videos.shape[-2:]) != hw:
        frames = videos.flatten(0, 1)  # [N, F, C, H, W] -> [N * F, C, H, W]
        frames = F.interpolate(frames, size=hw, mode="bilinear", antialias=True, align_corners=False)
        videos = frames.unflatten(0, (n, num_frames))  # -> [N, F, C, *size]
    return videos


def _size_hw(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(height), int(width)


def _read_decord(path: str, num_frames: int, sampling: str, fps: float | None) -> torch.Tensor:
    """uint8 [F, H, W, C] from decord; raises whatever decord raises on a bad file."""
    reader = decord.VideoReader(path, num_threads=DECODE_THREADS)
    indices = sample_indices(len(reader), num_frames, sampling, reader.get_avg_fps(), fps)
    # get_batch decodes each distinct index once; to_dlpack hands the buffer over without a copy.
    return torch.utils.dlpack.from_dlpack(reader.get_batch(indices).to_dlpack())


def _read_pyav(path: str, num_frames: int, sampling: str, fps: float | None) -> torch.Tensor:
    """uint8 [F, H, W, C] from PyAV, decoding the stream once and keeping the sampled frames."""
    with av.open(path) as container:
        if not container.streams.video:
            raise VideoReadError(path, "the file holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        native_fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        if sampling == "fps" and native_fps is None:
            raise VideoReadError(
                path, "the stream declares no frame rate, so sampling='fps' cannot place frames"
            )
        count = stream.frames
        if count <= 0:  # the container does not say: count by demuxing (cheap, no decoding)
            count = sum(1 for packet in container.demux(stream) if packet.size)
            container.seek(0)
        indices = sample_indices(count, num_frames, sampling, native_fps, fps)
        wanted = set(indices.tolist())
        decoded: dict[int, np.ndarray] = {}
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                decoded[index] = frame.to_ndarray(format="rgb24")
            if index >= indices[-1]:
                break
    missing = wanted - decoded.keys()
    if missing:
        raise VideoReadError(
            path, f"truncated: frame {min(missing)} of the {count} the container declares cannot be decoded"
        )
    return torch.from_numpy(np.stack([decoded[i] for i in indices.tolist()]))


def read_video(
    path: str | os.PathLike,
    num_frames: int,
    size: int | tuple[int, int] | None = None,
    sampling: str = "uniform",
    fps: float | None = None,
) -> torch.Tensor:
    """Read `num_frames` frames of the video at `path` as uint8 `[F, C, H, W]` RGB, F == num_frames.

    sampling: "uniform" (segment centres over the whole clip) or "fps" (frames at `fps` per second
        from the start); see `sample_indices`. Clips shorter than needed repeat frames evenly.
    size: None keeps the video's size; an int gives a square; `(H, W)` an exact size. Resizing
        squashes (no crop), bilinear with antialiasing.
    Raises `VideoReadError` (path + reason) for a missing, empty, truncated or non-video file.
    """
    path = str(path)
    hw = _size_hw(size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_MODES}")
    if sampling == "fps" and not (fps is not None and fps > 0):
        raise ValueError(f"sampling='fps' needs a positive fps, got {fps}")
    if os.path.isdir(path):
        raise VideoReadError(path, "a folder, not a video file")
    if not os.path.isfile(path):
        raise VideoReadError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise VideoReadError(path, "empty file (0 bytes)")
    frames = None
    if decord is not None:
        try:
            with _native_stderr_silenced():
                frames = _read_decord(path, num_frames, sampling, fps)
        except (RuntimeError, IndexError, AssertionError, ValueError, decord.DECORDError):
            frames = None  # PyAV gets a second chance, and gives the precise reason if it fails too
    if frames is None:
        try:
            frames = _read_pyav(path, num_frames, sampling, fps)
        except av.FFmpegError as error:
            raise VideoReadError(path, f"not a readable video ({error.strerror or error})") from error
    frames = frames.permute(0, 3, 1, 2)  # [F, H, W, C] -> [F, C, H, W], a channels-last view
    if hw is not None and tuple(frames.shape[-2:]) != hw:
        # uint8 antialiased bilinear has a fast vectorised path for channels-last input.
        frames = F.interpolate(frames, size=hw, mode="bilinear", antialias=True, align_corners=False)
    # numpy makes the layout contiguous ~3x faster than torch's contiguous() on uint8 with C = 3.
    return torch.from_numpy(np.ascontiguousarray(frames.numpy()))


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while decord runs: its C++ logger prints open and seek
    errors there even at `QUIET`, and a failed open is already handled (PyAV retries and names the
    reason). `CLEVEREWARD_DEBUG=1` keeps the messages.
    """
    if debug_enabled():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def write_video(
    frames: torch.Tensor | np.ndarray, path: str | os.PathLike, fps: float = 8, min_side: int = 0
) -> None:
    """Write uint8 `[F, C, H, W]` RGB frames to `path` as H.264 mp4 (yuv420p), atomically.

    H and W must be even (yuv420p stores colour at half resolution). The file appears at `path`
    only once complete. `min_side` > 0 first repeats every pixel k x k, k the smallest integer that
    brings the shorter side to at least `min_side`: at a few dozen pixels H.264's half-resolution
    colour and 4-16 px blocks visibly damage small objects, and repeated pixels keep every value.
    """
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if min_side > 0 and array.ndim == 4:
        factor = -(-min_side // min(array.shape[2:]))  # ceil
        array = array.repeat(factor, axis=2).repeat(factor, axis=3)  # [F, C, H, W] -> [F, C, kH, kW]
    if array.dtype != np.uint8:
        raise ValueError(f"write_video({path}): frames must be uint8, got {array.dtype}")
    if array.ndim != 4 or array.shape[1] != 3 or array.shape[0] < 1:
        raise ValueError(
            f"write_video({path}): frames must be [F, 3, H, W] with F >= 1, got {list(array.shape)}"
        )
    height, width = array.shape[2:]
    if height % 2 or width % 2:
        raise ValueError(f"write_video({path}): H.264 yuv420p needs even H and W, got {height}x{width}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"write_video({path}): fps must be positive, got {fps}")
    array = np.ascontiguousarray(array.transpose(0, 2, 3, 1))  # [F, C, H, W] -> [F, H, W, C]
    with atomic_write(Path(path), "wb") as file, av.open(file, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One thread: deterministic bytes, and corpus builders already run one encoder per core.
        stream.codec_context.thread_count = 1
        stream.options = dict(H264_OPTIONS)
        for index, image in enumerate(array):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = index  # in 1/fps units
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
