"""The bundled speech sample (audio, text, word timings) and the script that rebuilds it."""
