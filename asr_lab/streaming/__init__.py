"""Streaming policies that turn a whole-buffer recogniser (ASRBase) into an ASRProcessor."""
