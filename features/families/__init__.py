"""Feature families: each module computes its columns and rule hits and says its reasons."""
