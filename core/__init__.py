"""The bottom of huashu: what every stage shares and nothing of ours below it.

Vocabulary (`core.vocab`), the conversation records (`core.conversation`), NLU's parse and the
classifier protocol (`core.parse`), customers and the store protocol (`core.customers`), settings,
the JSON codec, the one YAML reader for `scripts_zh/` (`core.yamlio`) and small Redis-backed shared
state (`core.shared_kv`). Modules here import no other package of ours (scripts_zh is data).
"""
