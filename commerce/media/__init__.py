"""Pictures: where their files are kept (`store`) and how they are checked and sized (`pictures`)."""
