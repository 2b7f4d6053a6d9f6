"""Contracts, configuration and the audio edge: what everything else stands on."""
