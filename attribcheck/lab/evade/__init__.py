"""Transformations of a *model* that an infringer might use to cover its tracks (issue 19):
weight round trips and merges (`weights.py`, seconds), and further training from the model or
the base (`train.py`: washing on real data, a LoRA fine-tune, a distilled student).
`attribcheck.lab.bench.evade` audits what they make."""
