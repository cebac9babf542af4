"""Entry points: parse arguments, choose uvloop, wire runtime and actors, run.

These modules sit above the layers (they may import all of them) and hold no behaviour
of their own beyond configuration and wiring.
"""
