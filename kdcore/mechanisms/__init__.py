"""Mechanisms: who teaches whom and in which order; each calls the one engine through a Study."""
