"""The firewall engine: plain Python (no Django), so it runs the same in a request, a job, a command and a benchmark.

Stages, in order:

1. ``normalize`` — NFKC, invisible/bidi/control characters removed, Unicode tag payloads extracted, homoglyphs folded,
   whitespace collapsed (`firewall.engine.normalize`);
2. ``decode`` — the normalized text expanded into decoded candidates (base64, hex, URL encoding, rot13, leetspeak,
   the Unicode tag payload; nested to a small depth, bounded in count and size) (`firewall.engine.decode`);
3. detectors — each candidate scanned, each detector returning `Finding` objects (`firewall.engine.types`).
"""
