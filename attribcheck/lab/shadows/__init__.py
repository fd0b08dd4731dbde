"""Shadow models: the owner's own infringing and innocent fine-tunes that teach the
statistical-level discriminator what each kind of suspect's distance profile looks like."""
