"""`python -m attribcheck.bench ...`: the command name for the lab's benches (attribcheck.lab.bench)."""
