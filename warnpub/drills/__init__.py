"""Drills (应急演练): warnings with CAP status ``Exercise`` sent to a drill audience over the
real channels. See docs/drills.md."""
