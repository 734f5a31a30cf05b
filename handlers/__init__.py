"""What each event and command does: one router per module, thin async handlers."""
