"""What the recorder writes is on disk before it is named, and its name is on disk after.

A recorder runs in a child process under ``strace``, which logs its file system calls: every file it
renames into place (init segments, media segments, the playlist) must have been fsynced under its
temporary name before the rename, and the directory fsynced after it, before anything else is
renamed. Otherwise a power cut can leave a playlist naming a segment that is empty or gone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CALL = re.compile(r'^(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)')

SCRIPT = """
import sys
from pathlib import Path
from media.recording.recorder import Recorder
from tests.test_recording_units import feed
recorder = Recorder("r", "c", Path(sys.argv[1]), segment_seconds=1.0)
feed(recorder, 3.0)
recorder.stop()
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_recorder_fsyncs_files_and_directory(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    trace = tmp_path / "trace"
    subprocess.run(
        ["strace", "-ff", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
         "-o", str(trace), sys.executable, "-c", SCRIPT, str(rec)],
        cwd=ROOT, check=True, timeout=120, capture_output=True,
    )
    renamed: list[str] = []
    for per_thread in tmp_path.glob("trace.*"):
        opened: dict[int, str] = {}  # fd -> path, as last opened
        synced: set[str] = set()
        pending_dir: str | None = None  # a rename whose directory fsync is still due
        for line in per_thread.read_text().splitlines():
            m = CALL.match(line)
            if not m or int(m["ret"]) < 0:
                continue
            name, args, ret = m["name"], m["args"], int(m["ret"])
            paths = re.findall(r'"([^"]*)"', args)
            if name == "openat" and paths:
                opened[ret] = paths[0]
            elif name in ("fsync", "fdatasync"):
                path = opened.get(int(args.split(",")[0]), "")
                synced.add(path)
                if pending_dir is not None and path == pending_dir:
                    pending_dir = None
            elif name.startswith("rename") and len(paths) == 2 and paths[1].startswith(str(rec)):
                source, target = paths
                assert pending_dir is None, f"renamed {target} before the directory of the last rename was synced"
                assert source in synced, f"{target} renamed before its data was synced"
                synced.discard(source)
                pending_dir = str(Path(target).parent)
                renamed.append(Path(target).name)
        assert pending_dir is None, "the last rename's directory was never synced"
    assert {"init000.mp4", "seg000000.m4s", "index.m3u8"} <= set(renamed)
    assert sorted(p.name for p in rec.iterdir() if p.suffix == ".m4s") == sorted(
        n for n in set(renamed) if n.endswith(".m4s")
    )
