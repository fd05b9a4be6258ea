"""Campaign runner: the WeCom → SMS → AI-call cascade, dispatched on Dramatiq.

The store is the source of truth (one touch row per campaign, step and customer); queues carry
touch ids only. Edge layer: imports store/dialogue, never server/ or huashu/.
"""
