# SPDX-License-Identifier: GPL-3.0-or-later
"""The vendor's Halo emulator (``halo-emulator``) in-process, as the glasses for ``--device halo-emulator``.

``halo_emulator.HaloEmulator`` runs Halo's Lua runtime on lupa with the firmware's APIs; our
app (``lua/ga_app.lua``) runs in it unchanged and talks to the host over the emulated Bluetooth
(``EmulatorBrilliantMsg``, the same interface as ``brilliant_msg.BrilliantMsg``). This module adds
what a test rig needs around it, each at the Lua API level so that our app sees a device:

* a **microphone** fed in real time from WAV files (the room): 10 ms at a time, encoded the way
  the app started the microphone (LC3 on Halo, PCM16 on Frame), and only while it is started;
* a **speaker** recorder: what the app passes to ``frame.speaker.play`` is decoded and kept, so
  the reply the glasses would have played can be listened to (and transcribed);
* a **camera** (the emulator has none): the test stub :class:`PhotoCamera` is ``frame.camera``
  with ``capture``/``image_ready``/``read``/``read_raw`` fed by real photos, so ``camera.lua``
  streams a real JPEG and the host's ``RxPhoto`` receives it; like Frame's sensor it delivers the
  image turned a quarter, which RxPhoto turns upright;
* ``flavour="frame"``: Frame's API shape on the same runtime (``HARDWARE_VERSION`` "Frame", no
  speaker or button, a tap callback without a kind, ``display.text`` with an options table), so
  the Frame paths of the app (PCM microphone, camera) run too;
* faults: :meth:`EmulatedGlasses.drop_link` (the Bluetooth link goes away) and
  :meth:`EmulatedGlasses.fail_next` (a firmware API raises, so our app meets a Lua runtime error).

The emulator's package is in the ``test`` extra (it pulls in pygame for its window), not in what
a device installs; ``run --device halo-emulator`` says so when it is missing.
"""

from __future__ import annotations

import collections
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...audio.io import SAMPLE_RATE, read_wav, resample
from ...errors import AudioDeviceError
from .codec import FRAME_SAMPLES, Lc3Decoder, Lc3Encoder

log = logging.getLogger(__name__)

_QUALITY = {"VERY_LOW": 30, "LOW": 45, "MEDIUM": 60, "HIGH": 75, "VERY_HIGH": 90}
_JPEG_HEADER = 623
"""Bytes of JPEG header camera.lua's raw mode leaves out (brilliant_msg RxPhoto's convention)."""


def _require_emulator() -> Any:
    try:
        import halo_emulator
    except ImportError as err:
        raise AudioDeviceError(f"--device halo-emulator needs the vendor's emulator (pip install -e '.[test]'): "
                               f"{err}") from None
    return halo_emulator


class PhotoCamera:
    """``frame.camera`` for the emulated runtime: real photos, one per capture, in Frame's API shape.

    A capture takes ``delay_s`` (the sensor and the JPEG encoder); the image is square (the photo
    padded into it), at the requested resolution and quality, turned a quarter as Frame's sensor
    delivers it.
    """

    def __init__(self, photos: Sequence[Path], *, delay_s: float = 0.15) -> None:
        self.photos = [Path(p) for p in photos]
        self.delay_s = delay_s
        self.captures = 0
        self._jpeg = b""
        self._pos = 0
        self._ready_at: float | None = None

    def capture(self, opts: Any = None) -> None:
        from PIL import Image

        def opt(name: str, default: Any) -> Any:
            value = getattr(opts, name, None) if opts is not None else None
            return default if value is None else value

        resolution = int(opt("resolution", 512))
        quality = str(opt("quality", "VERY_HIGH"))
        if resolution % 2 or not 100 <= resolution <= 720:
            raise ValueError("resolution must be an even number between 100 and 720")
        if quality not in _QUALITY:
            raise ValueError("quality must be VERY_LOW, LOW, MEDIUM, HIGH or VERY_HIGH")
        if not self.photos:
            raise RuntimeError("camera not available")
        photo = self.photos[self.captures % len(self.photos)]
        self.captures += 1
        from PIL import ImageOps

        with Image.open(photo) as im:
            # Frame's sensor is square: the whole photo is placed in the square (padded, not cropped), so
            # what a test photo shows is all in the frame.
            im = ImageOps.pad(im.convert("RGB"), (resolution, resolution), color=(0, 0, 0))
            im = im.transpose(Image.Transpose.ROTATE_270)  # the sensor's orientation; RxPhoto turns it back
            out = io.BytesIO()
            im.save(out, format="JPEG", quality=_QUALITY[quality])
        self._jpeg, self._pos = out.getvalue(), 0
        self._ready_at = time.monotonic() + self.delay_s

    def image_ready(self) -> bool:
        return self._ready_at is not None and time.monotonic() >= self._ready_at

    def _read(self, n: Any, start: int) -> str | None:
        if not self.image_ready():
            return ""
        self._pos = max(self._pos, start)
        if self._pos >= len(self._jpeg):
            self._ready_at = None
            return None
        chunk = self._jpeg[self._pos:self._pos + int(n)]
        self._pos += len(chunk)
        return chunk.decode("latin-1")

    def read(self, n: Any) -> str | None:
        return self._read(n, 0)

    def read_raw(self, n: Any) -> str | None:
        return self._read(n, _JPEG_HEADER)

    @staticmethod
    def auto(_settings: Any = None) -> None:
        return None  # exposure is the photo's own

    @staticmethod
    def set_shutter(_v: Any) -> None:
        return None

    @staticmethod
    def set_gain(_v: Any) -> None:
        return None

    @staticmethod
    def set_white_balance(*_v: Any) -> None:
        return None


class _Room:
    """What the microphone hears: queued utterances with gaps of silence, in real time."""

    def __init__(self, gap_s: float) -> None:
        self.gap = int(gap_s * SAMPLE_RATE)
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._current = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self.said = 0
        self.released = threading.Event()
        """Nobody speaks before this is set (the wearer waits until the assistant says it listens)."""

    def say(self, audio: np.ndarray) -> None:
        with self._lock:
            self._queue.append(np.concatenate([audio.astype(np.float32), np.zeros(self.gap, np.float32)]))

    def next(self, n: int) -> np.ndarray:
        if not self.released.is_set():
            return np.zeros(n, np.float32)
        with self._lock:
            while len(self._current) < n and self._queue:
                self._current = np.concatenate([self._current, self._queue.popleft()])
                self.said += 1
            out = self._current[:n]
            self._current = self._current[n:]
        return out if len(out) == n else np.concatenate([out, np.zeros(n - len(out), np.float32)])

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._queue and not len(self._current)


class EmulatedGlasses:
    """The emulator as a pair of glasses: microphone from WAVs, speaker recorded, optional camera and faults."""

    def __init__(self, mic_wavs: Sequence[Path] = (), *, mic_gap_s: float = 1.5, flavour: str = "halo",
                 camera: Sequence[Path] = (), battery: int = 85, name: str = "halo-emulator") -> None:
        if flavour not in ("halo", "frame"):
            raise ValueError(f"flavour must be halo or frame, not {flavour!r}")
        hemu = _require_emulator()
        self.flavour = flavour
        self.name = name
        self.camera = PhotoCamera(camera) if camera else None
        self.room = _Room(mic_gap_s)
        self.audio_seconds = 0.0
        for wav in mic_wavs:
            audio, rate = read_wav(wav)
            audio = resample(audio, rate, SAMPLE_RATE)
            self.room.say(audio)
            self.audio_seconds += len(audio) / SAMPLE_RATE + mic_gap_s
        self.lua_print: Callable[[str], None] = lambda line: log.debug("glasses print: %s", line)
        self._emu = self._make_emulator(hemu)
        self._emu.set_battery_level(battery)
        self.mic_config: dict[str, Any] | None = None
        self.speaker_config: dict[str, Any] | None = None
        self._speaker_pcm: list[bytes] = []
        self._speaker_dec: Lc3Decoder | None = None
        self.speaker_stops = 0
        self.speaker_frames = 0
        self._faults: dict[str, str] = {}
        self._mic_encoder: Lc3Encoder | None = None
        self._feeder: threading.Thread | None = None
        self._stop = threading.Event()
        self.link_up = False
        self.on_link_lost: Callable[[], None] | None = None
        self._msg: Any = None
        self.shown: Any = None
        """A test's snapshot of the display (our app clears it when it stops)."""

    # ------------------------------------------------------------------ the runtime
    def _make_emulator(self, hemu: Any) -> Any:
        glasses = self

        class Emulator(hemu.HaloEmulator):
            def _build_runtime(self) -> None:  # the hooks go into every fresh Lua VM (each app start)
                super()._build_runtime()
                glasses._install(self._lua)

        return Emulator(print_handler=lambda line: glasses.lua_print(line))

    def _install(self, lua: Any) -> None:
        frame = lua.globals().frame
        mic_start = frame.microphone.start

        def start_mic(cfg: Any = None) -> None:
            mic_start(cfg)  # the emulator's own validation, as the firmware's
            self.mic_config = {"encoder": str(getattr(cfg, "encoder", None) or "pcm"),
                               "sample_rate": int(getattr(cfg, "sample_rate", None) or 8000)}
            self._mic_encoder = Lc3Encoder() if self.mic_config["encoder"] == "lc3" else None

        frame.microphone.start = start_mic
        if self.flavour == "halo":
            spk_start, spk_play, spk_stop = frame.speaker.start, frame.speaker.play, frame.speaker.stop

            def start_speaker(cfg: Any = None) -> None:
                spk_start(cfg)
                self.speaker_config = {"encoder": str(getattr(cfg, "encoder", None) or "pcm"),
                                       "sample_rate": int(getattr(cfg, "sample_rate", None) or 8000)}
                self._speaker_dec = Lc3Decoder() if self.speaker_config["encoder"] == "lc3" else None

            def play(data: Any = None) -> None:
                spk_play(data)
                raw = data.encode("latin-1") if isinstance(data, str) else bytes(data)
                if self._speaker_dec is not None:
                    self._speaker_pcm.append(self._speaker_dec.decode(raw))  # whole frames, as the firmware
                    self.speaker_frames += len(raw) // 40
                else:
                    self._speaker_pcm.append(raw)

            def stop_speaker() -> None:
                spk_stop()
                self.speaker_stops += 1

            frame.speaker.start, frame.speaker.play, frame.speaker.stop = start_speaker, play, stop_speaker
        else:
            lua.execute("frame.HARDWARE_VERSION = 'Frame'; frame.speaker = nil; frame.button = nil")
            tap_callback, text = frame.imu.tap_callback, frame.display.text

            def frame_tap_callback(fn: Any) -> None:  # Frame's callback gets no kind: one call per tap
                tap_callback(None if fn is None else (lambda _kind=None: fn()))

            def frame_text(s: Any, x: Any, y: Any, opts: Any = None) -> None:
                text(s, x, y, 0xFFFFFF)

            frame.imu.tap_callback, frame.display.text = frame_tap_callback, frame_text
        if self.camera is not None:
            cam = lua.table()
            for name in ("capture", "image_ready", "read", "read_raw", "auto", "set_shutter", "set_gain",
                         "set_white_balance"):
                cam[name] = getattr(self.camera, name)
            frame.camera = cam
        for api in ("display.text", "microphone.read", "bluetooth.send"):
            table, fn = api.split(".")
            original = getattr(getattr(frame, table), fn)
            setattr(getattr(frame, table), fn, self._faulty(api, original))

    def _faulty(self, api: str, fn: Any) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            message = self._faults.pop(api, None)
            if message is not None:
                raise RuntimeError(message)
            return fn(*args)

        return call

    # ------------------------------------------------------------------ the link (what the host side drives)
    def brilliant_msg(self) -> Any:
        """The ``EmulatorBrilliantMsg`` on this emulator, for a (re)connection: as a BrilliantMsg."""
        hemu = _require_emulator()
        if self._msg is None:  # one adapter for good: each one adds a listener to the emulated Bluetooth
            self._msg = hemu.EmulatorBrilliantMsg(self._emu)
        # The emulator's stop() leaves a "stop" event queued when its Lua thread had already ended;
        # the next app would take it for its own stop. A fresh connection starts with an empty queue.
        self._emu._event_queue.drain()
        self.link_up = True
        self.start_microphone_feed()
        return self._msg

    def start_microphone_feed(self) -> None:
        if self._feeder is None:
            self._feeder = threading.Thread(target=self._feed, name="halo-emulator-mic", daemon=True)
            self._feeder.start()

    def _feed(self) -> None:
        """Real time, 10 ms at a time: what the room says reaches the app only while its microphone runs."""
        next_t = time.monotonic()
        mic = self._emu._microphone  # the emulator's microphone stub: its status() is the firmware's
        while not self._stop.is_set():
            samples = self.room.next(FRAME_SAMPLES)
            cfg = self.mic_config
            if self.link_up and cfg is not None and mic.status() == "streaming":
                if cfg["encoder"] == "lc3" and self._mic_encoder is not None:
                    data = self._mic_encoder.encode(samples)
                else:
                    pcm = resample(samples, SAMPLE_RATE, cfg["sample_rate"])
                    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
                self._emu.inject_microphone_data(data)
            next_t += FRAME_SAMPLES / SAMPLE_RATE
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    # ------------------------------------------------------------------ what a test does to the glasses
    def speak(self) -> None:
        """The wearer starts saying what was queued (the room is quiet until then)."""
        self.room.released.set()

    def say(self, wav_or_audio: Path | np.ndarray) -> None:
        """Queue speech for the microphone (after whatever is still being said)."""
        if isinstance(wav_or_audio, np.ndarray):
            audio = wav_or_audio
        else:
            audio, rate = read_wav(Path(wav_or_audio))
            audio = resample(audio, rate, SAMPLE_RATE)
        self.room.say(audio)

    def tap(self, kind: str = "single") -> None:
        """A tap on the frame (the IMU's tap detector)."""
        self._emu.inject_imu_tap(kind)

    def press(self) -> None:
        """A press of Halo's button."""
        self._emu.inject_button_single()

    def set_battery(self, percent: int, charging: bool = False) -> None:
        self._emu.set_battery_level(percent)
        self._emu.set_battery_charging(charging)

    def fail_next(self, api: str, message: str) -> None:
        """The next call of ``api`` (display.text, microphone.read or bluetooth.send) raises ``message``."""
        self._faults[api] = message

    def drop_link(self) -> None:
        """The Bluetooth link goes away: the app stops, the host is told, as when the wearer walks off."""
        self.link_up = False
        self._emu.stop()
        if self.on_link_lost is not None:
            self.on_link_lost()

    def framebuffer(self) -> Any:
        """The display as a 256x256 PIL image."""
        return self._emu.get_framebuffer()

    def lua_error(self) -> Exception | None:
        """The error that ended the app, if one did (an error our app did not catch)."""
        return self._emu.get_error()

    def speaker_audio(self) -> np.ndarray:
        """Everything played on the speaker so far, float32 at 16 kHz."""
        pcm = b"".join(self._speaker_pcm)
        rate = (self.speaker_config or {}).get("sample_rate", SAMPLE_RATE)
        audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        return resample(audio, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio

    def clear_speaker(self) -> None:
        self._speaker_pcm.clear()

    def close(self) -> None:
        self._stop.set()
        self.link_up = False
        self._emu.stop()
        if self._feeder is not None:
            self._feeder.join(timeout=2)
        self._emu.__exit__(None, None, None)  # removes its sandbox folder
