"""Village loudspeakers beyond the single delivery: re-broadcast rounds (``speaker_rounds``)."""
