"""Network basics shared by every listener (connection limits)."""
