"""How the vad demo's speech clips (autoprec/assets/speech/*.wav) were made: espeak-ng, several voices,
speeds and pitches, resampled to 16 kHz mono 16-bit with sox. Run once by a developer (needs
`apt-get install espeak-ng sox`); the demo only reads the committed files, nothing is generated at run time.

    python -m benchmarks.speech_clips autoprec/assets/speech
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

# (voice, words per minute, pitch 0-99, text): English voices and variants, male and female, slow to fast.
CLIPS = (
    ("en-us", 150, 45, "The quick brown fox jumps over the lazy dog."),
    ("en-gb+f3", 170, 60, "Please turn off the lights before you leave the room."),
    ("en-gb-scotland", 135, 35, "It is going to rain tomorrow, so bring an umbrella."),
    ("en-us+m3", 190, 50, "Seven hundred and forty two people answered the survey."),
    ("en-029+f2", 160, 70, "Can you hear me now? The signal is very weak here."),
    ("en-gb-x-rp", 145, 40, "She sells sea shells by the sea shore every summer."),
    ("en-us+f4", 200, 65, "We measured the latency of every layer on the device."),
    ("en-gb-x-gbclan+m2", 125, 30, "Stop. Wait a moment, and then start again slowly."),
)


def make_clip(voice: str, speed: int, pitch: int, text: str, path: Path) -> None:
    """One sentence spoken by espeak-ng, as a 16 kHz mono 16-bit wav at `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    folder.mkdir(parents=True, exist_ok=True)
    for i, (voice, speed, pitch, text) in enumerate(CLIPS):
        make_clip(voice, speed, pitch, text, folder / f"clip{i}_{voice.replace('+', '_')}.wav")


if __name__ == "__main__":
    main()
