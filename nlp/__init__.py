"""Chinese commands → a Segment tree: pure functions of text (issue 5)."""
