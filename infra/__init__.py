"""catwalk Pulumi program (composition root) and command-line tools."""
