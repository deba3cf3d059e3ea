"""The floor: a connection point in dialogue with the hall (stage: who is on the program; mixer: the
one audio mix of a dialogue)."""
