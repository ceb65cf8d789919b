# SPDX-License-Identifier: GPL-3.0-or-later
"""``glasses-assistant translate``: one text or one WAV, translated and printed (and spoken with --out)."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import Config
from .languages import name


def translate_once(config: Config, text: str | None, wav: Path | None, source: str | None, target: str,
                   *, out: Path | None = None) -> int:
    from ..audio.io import SAMPLE_RATE, read_wav, resample, write_wav
    from ..catalog import load_catalogue
    from ..engines.stt import WhisperEngine
    from ..engines.voices import Voice, open_voice
    from ..errors import ConfigError
    from .engines import NOT_TRANSLATED, WhisperTranslator
    from .factory import open_translator

    catalogue = load_catalogue(cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
    tcfg = config.translate
    for code in (source, target):
        if code is not None and code not in tcfg.language_list:
            raise ConfigError(f"{name(code)} ({code}) is not among the translated languages ({tcfg.languages}); "
                              "see --translate-languages")
    t0 = time.perf_counter()
    if wav is not None:
        path, stt_id = catalogue.resolve("stt", tcfg.stt_model)
        stt = WhisperEngine(path, config.stt)
        audio = resample(*read_wav(wav), SAMPLE_RATE)
        if tcfg.engine == "whisper":
            if target != "en":
                raise ConfigError("--engine whisper translates into English only (use --to en)")
            result = WhisperTranslator(stt, model=stt_id).translate_speech(audio, source)
            print(f"[{result.source}] (speech)")
        else:
            heard = stt.transcribe(audio, language=source, detect=source is None)
            if heard.is_empty:
                print("no speech was heard in the input")
                return 1
            print(f"[{heard.language}] {heard.text}")
            source = heard.language
            if source not in tcfg.language_list:
                print(f"Sorry, I can't translate {name(source)}.")
                return 1
            result = open_translator(config, catalogue).translate(heard.text, source, target)
    else:
        assert text is not None and source is not None
        if tcfg.engine == "whisper":
            raise ConfigError("--engine whisper translates speech only: give --wav, or use --engine llm")
        result = open_translator(config, catalogue).translate(text, source, target)
    print(f"  -> [{target}] {result.text}")
    print(f"engine {result.engine}, model {result.model}, {time.perf_counter() - t0:.2f} s"
          + ("" if result.ok else f" (not translated: {result.why})"))
    if out is not None and result.text != NOT_TRANSLATED:
        lang_voice = tcfg.voice_map.get(target) or (config.tts.voice if target == "en" else f"espeak-ng:{target}")
        if lang_voice is None:
            from ..engines.tts import PiperEngine

            vpath, _ = catalogue.resolve("tts", None)
            voice: Voice = PiperEngine(vpath, config.tts)
        else:
            voice = open_voice(lang_voice, catalogue, config.tts)
        write_wav(out, voice.synthesize(result.text), voice.sample_rate)
        print(f"spoken: {out}")
    return 0 if result.ok else 1
