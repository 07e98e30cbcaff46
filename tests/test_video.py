"""read_video / write_video: round trips, sampling, resizing, and one error type for every bad file."""

import pickle

import av
import numpy as np
import pytest
import torch

import reward.video
from reward.video import VideoReadError, read_video, sample_indices, write_video

BACKENDS = ["decord", "pyav"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Run a test with decord (the default) and with the PyAV fallback forced."""
    if request.param == "pyav":
        monkeypatch.setattr(reward.video, "decord", None)
    return request.param


def ramp_video(num_frames: int, height: int = 32, width: int = 48) -> torch.Tensor:
    """uint8 [F, 3, H, W]: frame k is flat gray at level 10 * k + 20, so a decoded frame names its index."""
    levels = torch.arange(num_frames, dtype=torch.uint8) * 10 + 20
    return levels.view(num_frames, 1, 1, 1).expand(num_frames, 3, height, width).contiguous()


def frame_index(frames: torch.Tensor) -> list[int]:
    """Recover each frame's index from its gray level (inverse of ramp_video)."""
    return [round((level - 20) / 10) for level in frames.float().mean(dim=(1, 2, 3)).tolist()]


def test_round_trip_keeps_shape_dtype_and_pixels(tmp_path, backend):
    rng = np.random.default_rng(0)
    # Smooth content (H.264 keeps it nearly exactly): a moving gradient plus a colored block.
    y, x = np.mgrid[0:40, 0:64]
    frames = np.stack([np.stack([(x * 4 + k * 8) % 256, y * 6, np.full_like(x, 128)]) for k in range(12)])
    frames = frames.astype(np.uint8)
    frames[:, :, 10:20, 20:30] = rng.integers(0, 256, size=(1, 3, 1, 1), dtype=np.uint8)
    path = tmp_path / "clip.mp4"
    write_video(frames, path, fps=8)
    read = read_video(path, 12)
    assert read.shape == (12, 3, 40, 64) and read.dtype == torch.uint8
    assert (read.float() - torch.from_numpy(frames).float()).abs().mean() < 3.0
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_write_video_checks_its_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(torch.zeros(2, 3, 8, 8), tmp_path / "a.mp4")
    with pytest.raises(ValueError, match=r"\[F, 3, H, W\]"):
        write_video(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="even H and W"):
        write_video(torch.zeros(2, 3, 9, 8, dtype=torch.uint8), tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="fps"):
        write_video(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), tmp_path / "a.mp4", fps=0)
    assert list(tmp_path.iterdir()) == []


def test_uniform_indices_are_segment_centres():
    assert sample_indices(32, 4).tolist() == [4, 12, 20, 28]
    assert sample_indices(16, 16).tolist() == list(range(16))
    assert sample_indices(10, 3).tolist() == [1, 5, 8]


def test_short_clips_repeat_frames_evenly():
    assert sample_indices(4, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sample_indices(1, 5).tolist() == [0] * 5
    counts = np.bincount(sample_indices(5, 16))
    assert counts.max() - counts.min() <= 1  # each frame about 16 / 5 times


def test_fps_indices_and_fallback():
    assert sample_indices(48, 4, "fps", native_fps=24, fps=8).tolist() == [0, 3, 6, 9]
    assert sample_indices(48, 4, "fps", native_fps=8, fps=8).tolist() == [0, 1, 2, 3]
    # 16 frames at 8 fps need 2 s; a 1 s clip at 24 fps falls back to uniform over the clip.
    assert sample_indices(24, 16, "fps", native_fps=24, fps=8).tolist() == sample_indices(24, 16).tolist()
    with pytest.raises(ValueError, match="fps"):
        sample_indices(48, 4, "fps", native_fps=24)
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_indices(48, 4, "random")
    with pytest.raises(ValueError, match="num_frames"):
        sample_indices(48, 0)


def test_read_video_takes_the_sampled_frames(tmp_path, backend):
    path = tmp_path / "ramp.mp4"
    write_video(ramp_video(20), path, fps=10)
    assert frame_index(read_video(path, 4)) == sample_indices(20, 4).tolist()
    assert frame_index(read_video(path, 5, sampling="fps", fps=5)) == [0, 2, 4, 6, 8]
    assert frame_index(read_video(path, 25)) == sample_indices(20, 25).tolist()
    with pytest.raises(ValueError, match="positive fps"):
        read_video(path, 4, sampling="fps")
    with pytest.raises(ValueError, match="num_frames"):
        read_video(path, 0)


def test_both_backends_give_the_same_frames(tmp_path, monkeypatch):
    path = tmp_path / "ramp.mp4"
    write_video(ramp_video(20), path)
    with_decord = read_video(path, 7, size=(16, 24))
    monkeypatch.setattr(reward.video, "decord", None)
    assert torch.equal(with_decord, read_video(path, 7, size=(16, 24)))


def test_resize_int_and_tuple(tmp_path, backend):
    path = tmp_path / "ramp.mp4"
    write_video(ramp_video(8, 48, 64), path)
    square = read_video(path, 8, size=24)
    assert square.shape == (8, 3, 24, 24) and square.dtype == torch.uint8
    assert read_video(path, 8, size=(16, 40)).shape == (8, 3, 16, 40)
    # Flat frames stay flat: antialiasing only averages neighbours.
    assert frame_index(square) == list(range(8))
    assert (square.float().amax(dim=(1, 2, 3)) - square.float().amin(dim=(1, 2, 3))).max() <= 2


def test_one_frame_video_gives_copies(tmp_path, backend):
    path = tmp_path / "one.mp4"
    write_video(ramp_video(1), path)
    frames = read_video(path, 6)
    assert frames.shape == (6, 3, 32, 48)
    assert all(torch.equal(frame, frames[0]) for frame in frames)


def _truncated_faststart(path, tmp_path):
    """A real mp4 whose index (moov) comes first, cut after half its bytes: declares frames it lacks."""
    full = tmp_path / "faststart.mp4"
    frames = np.random.default_rng(0).integers(0, 256, size=(40, 64, 64, 3), dtype=np.uint8)
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "no such file"),
        ("folder", "a folder, not a video file"),
        ("empty", "empty file"),
        ("text", "not a readable video"),
        ("truncated", "not a readable video"),  # index at the end: cut off with the second half
        ("truncated_faststart", "truncated"),  # index first: frames declared but missing
    ],
)
def test_bad_files_raise_one_error_naming_file_and_reason(tmp_path, backend, case, reason):
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.touch()
    elif case == "folder":
        path.mkdir()
    elif case == "text":
        path.write_text("this is not a video\n" * 20)
    elif case == "truncated":
        write_video(ramp_video(24), tmp_path / "full.mp4")
        data = (tmp_path / "full.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "truncated_faststart":
        _truncated_faststart(path, tmp_path)
    with pytest.raises(VideoReadError) as caught:
        read_video(path, 16)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.path == str(path) and reason in error.reason
    assert str(error) == f"{path}: {error.reason}"


def test_video_read_error_survives_pickling():
    """Worker processes send it back to the parent."""
    error = pickle.loads(pickle.dumps(VideoReadError("a.mp4", "empty file (0 bytes)")))
    assert (error.path, error.reason, str(error)) == (
        "a.mp4",
        "empty file (0 bytes)",
        "a.mp4: empty file (0 bytes)",
    )


def test_resample_videos_picks_frames_and_resizes_like_read_video(tmp_path):
    from reward.video import resample_videos

    torch.manual_seed(0)
    videos = torch.rand(2, 16, 3, 64, 64)  # [N, F, C, H, W]
    out = resample_videos(videos, 8, 32)
    assert out.shape == (2, 8, 3, 32, 32) and out.dtype == videos.dtype
    picked = videos[:, torch.from_numpy(sample_indices(16, 8))]
    # Same frames, same antialiased bilinear resize as read_video.
    expected = torch.nn.functional.interpolate(
        picked.flatten(0, 1), size=(32, 32), mode="bilinear", antialias=True, align_corners=False
    ).unflatten(0, (2, 8))
    assert torch.allclose(out, expected)
    assert resample_videos(videos, 16, (64, 64)) is videos  # nothing to do: no copy
    with pytest.raises(ValueError, match="float"):
        resample_videos(videos.to(torch.uint8), 8, 32)


def test_decoder_messages_do_not_reach_the_user(tmp_path, capfd, monkeypatch):
    """decord's C++ logger writes open failures to file descriptor 2; only our error is shown."""
    write_video(ramp_video(24), tmp_path / "full.mp4")
    path = tmp_path / "truncated.mp4"
    path.write_bytes((tmp_path / "full.mp4").read_bytes()[: (tmp_path / "full.mp4").stat().st_size // 2])
    monkeypatch.delenv("CLEVEREWARD_DEBUG", raising=False)
    with pytest.raises(VideoReadError):
        read_video(path, 16)
    assert ".cc:" not in capfd.readouterr().err  # decord's lines name their C++ source file
    monkeypatch.setenv("CLEVEREWARD_DEBUG", "1")  # debugging lets them through
    with pytest.raises(VideoReadError):
        read_video(path, 16)
    assert ".cc:" in capfd.readouterr().err
