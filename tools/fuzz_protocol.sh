#!/usr/bin/env bash
# Fuzz TSP/1 (framer, command parser, number parsers, db decoder, record writer): the
# `protocol` target of tools/fuzz.sh, which also fuzzes the app (`app`) and the engine's
# model validation (`model`).
#   tools/fuzz_protocol.sh [SECONDS]     (default 60)
# FUZZ_OUT=DIR keeps the corpus, crashes and binary there (default build/fuzz/protocol).
exec "$(dirname "$0")/fuzz.sh" protocol "$@"
