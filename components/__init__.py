"""catwalk library: config model, runtime detection, Fly client, Pulumi providers."""
