"""The asyncio side of every process: the one loop thread, timers, guarded tasks.

The boundary between pykka actors (threads) and asyncio: coroutines are submitted to the
loop, results come back to actors as messages. It may import :mod:`fleet.runtime.actorkit`
and nothing else of the runtime.
"""
