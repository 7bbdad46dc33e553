"""Staff members, roles, invites and the audit log."""
