"""Pure render functions: a custom resource's spec in, the desired child manifests out. No I/O here."""
