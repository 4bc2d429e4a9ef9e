//! kubectl-style commands.
